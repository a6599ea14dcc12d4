//! The database against real SQLite files in temporary directories.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use storefactory_core::error::RepositoryError;
use storefactory_core::port::{Quota, StoreFilter, StoreRepository, Usage};
use storefactory_core::spec::{Quantity, StoreId, StoreSpec};
use storefactory_core::store::{EventKind, StoreRecord, StoreStatus, Timestamp};
use storefactory_sql::{
    AuditFilter, AuditRecord, Database, DeliveryOutcome, DeliveryState, Error, NewWebhook, Role,
    SCHEMA_VERSION, StoreOrder, WebhookEvents,
};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

async fn fresh() -> (TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("storefactory.db"))
        .await
        .unwrap();
    (dir, db)
}

async fn user(db: &Database, name: &str, max_stores: u32, max_storage_gib: u64) {
    db.create_user(
        name,
        PASSWORD,
        Role::User,
        Quota {
            max_stores,
            max_storage_gib,
        },
    )
    .await
    .unwrap();
}

/// A store of `owner` reserving 1 GiB for MySQL and `wordpress_gib` for WordPress.
fn store(id: &str, owner: &str, wordpress_gib: u64) -> StoreRecord {
    let id = StoreId::new(id).unwrap();
    let mut spec = StoreSpec::new(id.clone(), owner, format!("{id}.shop.example"));
    spec.mysql.storage = Quantity::gib(1);
    spec.wordpress.storage = Quantity::gib(wordpress_gib);
    StoreRecord::new(spec, format!("Shop {id}"), "woocommerce")
}

fn id(text: &str) -> StoreId {
    StoreId::new(text).unwrap()
}

fn status(status: StoreStatus) -> EventKind {
    EventKind::Status {
        status,
        reason: None,
    }
}

fn step(step: &str) -> EventKind {
    EventKind::Step {
        step: step.to_owned(),
        message: String::new(),
    }
}

fn set_user_version(path: &Path, version: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
}

// ---------------------------------------------------------------- schema and reopening

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storefactory.db");
    let record = store("keep1", "alice", 2);
    {
        let db = Database::open(&path).await.unwrap();
        user(&db, "alice", 3, 10).await;
        db.insert_store(&record).await.unwrap();
        db.set_status(&record.id, StoreStatus::Failed, Some("seeding failed"))
            .await
            .unwrap();
        db.append_event(&record.id, Timestamp(5), &step("apply"))
            .await
            .unwrap();
        db.record_audit(AuditRecord::new("store.create").actor("alice"))
            .await
            .unwrap();
        db.set_setting("token-key", "s3cret").await.unwrap();
    }

    let db = Database::open(&path).await.unwrap();
    let stored = db.get_store(&record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.spec, record.spec,
        "the spec survives the JSON round trip"
    );
    assert_eq!(stored.status, StoreStatus::Failed);
    assert_eq!(stored.reason.as_deref(), Some("seeding failed"));
    assert_eq!(stored.created_at, record.created_at);
    assert_eq!(db.events(&record.id, 0).await.unwrap().len(), 1);
    assert!(
        db.verify_password("alice", PASSWORD)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        db.get_user("alice").await.unwrap().unwrap().quota,
        Quota {
            max_stores: 3,
            max_storage_gib: 10
        }
    );
    assert_eq!(
        db.audit_log(&AuditFilter::default()).await.unwrap()[0].action,
        "store.create"
    );
    assert_eq!(
        db.get_setting("token-key").await.unwrap().as_deref(),
        Some("s3cret")
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storefactory.db");
    drop(Database::open(&path).await.unwrap());
    set_user_version(&path, SCHEMA_VERSION + 1);

    let err = Database::open(&path).await.unwrap_err();
    assert!(
        matches!(err, Error::NewerSchema { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("supports at most version"), "{message}");
}

#[tokio::test]
async fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (name TEXT)")
        .unwrap();
    let err = Database::open(&path).await.unwrap_err();
    assert!(matches!(err, Error::ForeignDatabase { .. }), "{err:?}");
}

#[tokio::test]
async fn in_memory_database_is_real_sqlite() {
    let db = Database::open_in_memory().await.unwrap();
    assert_eq!(db.path(), None);
    user(&db, "alice", 1, 10).await;
    db.insert_store(&store("mem1", "alice", 1)).await.unwrap();
    let err = db
        .insert_store(&store("mem2", "alice", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepositoryError::QuotaExceeded { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- quota

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creations_with_a_quota_of_three_let_exactly_three_in() {
    let (_dir, db) = fresh().await;
    user(&db, "alice", 3, 1000).await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.insert_store(&store(&format!("race{i}"), "alice", 1))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(RepositoryError::QuotaExceeded { owner, message }) => {
                assert_eq!(owner, "alice");
                assert!(message.contains("store limit"), "{message}");
            }
            Err(other) => panic!("expected a quota error, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    eprintln!("50 concurrent creations took {elapsed:?}");

    assert_eq!(created, 3);
    assert_eq!(
        db.list_stores(&StoreFilter::owner("alice"))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        db.usage("alice").await.unwrap(),
        Usage {
            stores: 3,
            storage_gib: 6
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_share_the_quota() {
    // Two `Database`s on one file behave like two processes (a CLI next to the server): each
    // has its own write connection, so only SQLite's locks and the busy timeout keep them
    // apart.
    let (dir, first) = fresh().await;
    let second = Database::open(dir.path().join("storefactory.db"))
        .await
        .unwrap();
    user(&first, "alice", 3, 1000).await;

    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let db = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                db.insert_store(&store(&format!("two{i}"), "alice", 1))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(RepositoryError::QuotaExceeded { .. }) => {}
            Err(other) => panic!("expected a quota error, got {other:?}"),
        }
    }
    assert_eq!(created, 3);
}

#[tokio::test]
async fn storage_quota_counts_wordpress_and_mysql_volumes_of_live_stores() {
    let (_dir, db) = fresh().await;
    user(&db, "bob", 10, 10).await;

    // 1 GiB MySQL + 2 GiB WordPress = 3 GiB each.
    for name in ["st1", "st2", "st3"] {
        db.insert_store(&store(name, "bob", 2)).await.unwrap();
    }
    assert_eq!(
        db.usage("bob").await.unwrap(),
        Usage {
            stores: 3,
            storage_gib: 9
        }
    );
    let err = db.insert_store(&store("st4", "bob", 2)).await.unwrap_err();
    let RepositoryError::QuotaExceeded { message, .. } = err else {
        panic!("expected a quota error, got {err:?}");
    };
    assert!(message.contains("storage limit"), "{message}");
    // A store that fits in what is left still goes in.
    db.insert_store(&store("st5", "bob", 0)).await.unwrap();

    // Stores being deleted still hold their volumes; deleted ones do not.
    db.set_status(&id("st1"), StoreStatus::Deleting, None)
        .await
        .unwrap();
    assert_eq!(db.usage("bob").await.unwrap().storage_gib, 10);
    db.set_status(&id("st1"), StoreStatus::Deleted, None)
        .await
        .unwrap();
    assert_eq!(
        db.usage("bob").await.unwrap(),
        Usage {
            stores: 3,
            storage_gib: 7
        }
    );
    db.insert_store(&store("st4", "bob", 2)).await.unwrap();
}

#[tokio::test]
async fn lowering_a_quota_keeps_existing_stores_and_refuses_new_ones() {
    let (_dir, db) = fresh().await;
    user(&db, "carol", 5, 100).await;
    db.insert_store(&store("low1", "carol", 1)).await.unwrap();
    db.insert_store(&store("low2", "carol", 1)).await.unwrap();

    let updated = db
        .set_quota(
            "carol",
            Quota {
                max_stores: 1,
                max_storage_gib: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.quota.max_stores, 1);
    assert_eq!(
        db.list_stores(&StoreFilter::owner("carol"))
            .await
            .unwrap()
            .len(),
        2
    );
    let err = db
        .insert_store(&store("low3", "carol", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepositoryError::QuotaExceeded { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_owner_who_is_not_a_user_may_hold_nothing() {
    let (_dir, db) = fresh().await;
    let err = db
        .insert_store(&store("ghost1", "nobody", 1))
        .await
        .unwrap_err();
    let RepositoryError::QuotaExceeded { owner, message } = err else {
        panic!("expected a quota error, got {err:?}");
    };
    assert_eq!(owner, "nobody");
    assert!(message.contains("not a user"), "{message}");
    assert_eq!(db.get_store(&id("ghost1")).await.unwrap(), None);
}

// ---------------------------------------------------------------- stores

#[tokio::test]
async fn a_live_id_cannot_be_taken_twice_but_a_deleted_one_can() {
    let (_dir, db) = fresh().await;
    user(&db, "dave", 10, 100).await;
    let first = store("same1", "dave", 1);
    db.insert_store(&first).await.unwrap();
    db.append_event(&first.id, Timestamp(1), &step("old"))
        .await
        .unwrap();

    let err = db
        .insert_store(&store("same1", "dave", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::AlreadyExists { ref id } if id.as_str() == "same1"));

    db.insert_store(&store("other1", "dave", 1)).await.unwrap();
    db.set_status(&first.id, StoreStatus::Deleting, None)
        .await
        .unwrap();
    db.set_status(&first.id, StoreStatus::Deleted, None)
        .await
        .unwrap();
    let mut again = store("same1", "dave", 1);
    again.name = "Second life".to_owned();
    db.insert_store(&again).await.unwrap();

    let stored = db.get_store(&again.id).await.unwrap().unwrap();
    assert_eq!(stored.name, "Second life");
    assert_eq!(stored.status, StoreStatus::Initialized);
    assert!(
        db.events(&again.id, 0).await.unwrap().is_empty(),
        "old history is gone"
    );
    let ids: Vec<_> = db
        .list_stores(&StoreFilter::owner("dave"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        ids,
        ["other1", "same1"],
        "the re-created store counts as the newest"
    );
}

#[tokio::test]
async fn listing_is_oldest_first_and_filters_by_owner_and_deletion() {
    let (_dir, db) = fresh().await;
    user(&db, "erin", 10, 100).await;
    user(&db, "frank", 10, 100).await;
    for (name, owner) in [
        ("l1", "erin"),
        ("l2", "frank"),
        ("l3", "erin"),
        ("l4", "frank"),
    ] {
        db.insert_store(&store(name, owner, 1)).await.unwrap();
    }
    db.set_status(&id("l3"), StoreStatus::Deleting, None)
        .await
        .unwrap();
    db.set_status(&id("l3"), StoreStatus::Deleted, None)
        .await
        .unwrap();

    let ids = |records: Vec<StoreRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.id.to_string()).collect()
    };
    assert_eq!(
        ids(db.list_stores(&StoreFilter::default()).await.unwrap()),
        ["l1", "l2", "l4"]
    );
    assert_eq!(
        ids(db
            .list_stores(&StoreFilter {
                owner: None,
                include_deleted: true
            })
            .await
            .unwrap()),
        ["l1", "l2", "l3", "l4"]
    );
    assert_eq!(
        ids(db.list_stores(&StoreFilter::owner("erin")).await.unwrap()),
        ["l1"]
    );
    assert_eq!(
        ids(db
            .list_stores(&StoreFilter {
                owner: Some("erin".into()),
                include_deleted: true
            })
            .await
            .unwrap()),
        ["l1", "l3"]
    );
}

#[tokio::test]
async fn set_status_returns_the_updated_record_and_knows_missing_stores() {
    let (_dir, db) = fresh().await;
    user(&db, "gina", 10, 100).await;
    let record = store("stat1", "gina", 1);
    db.insert_store(&record).await.unwrap();

    let failed = db
        .set_status(&record.id, StoreStatus::Failed, Some("image pull"))
        .await
        .unwrap();
    assert_eq!(failed.status, StoreStatus::Failed);
    assert_eq!(failed.reason.as_deref(), Some("image pull"));
    assert!(failed.updated_at >= record.updated_at);
    let retried = db
        .set_status(&record.id, StoreStatus::Provisioning, None)
        .await
        .unwrap();
    assert_eq!(
        retried.reason, None,
        "the reason is cleared with the status"
    );
    assert_eq!(db.get_store(&record.id).await.unwrap(), Some(retried));

    let err = db
        .set_status(&id("missing"), StoreStatus::Ready, None)
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound { .. }), "{err:?}");
    assert_eq!(db.get_store(&id("missing")).await.unwrap(), None);
}

// ---------------------------------------------------------------- events

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_numbered_per_store_and_come_back_in_order() {
    let (_dir, db) = fresh().await;
    user(&db, "hank", 10, 100).await;
    let (a, b) = (store("eva", "hank", 1), store("evb", "hank", 1));
    db.insert_store(&a).await.unwrap();
    db.insert_store(&b).await.unwrap();

    let first = db
        .append_event(&a.id, Timestamp(10), &status(StoreStatus::Provisioning))
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    let other = db
        .append_event(&b.id, Timestamp(11), &step("apply Namespace"))
        .await
        .unwrap();
    assert_eq!(other.seq, 1, "numbering is per store");

    // Many appenders at once still get distinct, gap-free numbers.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            let id = a.id.clone();
            tokio::spawn(async move {
                db.append_event(&id, Timestamp(100 + i), &step(&format!("step {i}")))
                    .await
                    .unwrap()
                    .seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=21).collect::<Vec<_>>());

    let last = db
        .append_event(
            &a.id,
            Timestamp(999),
            &EventKind::Status {
                status: StoreStatus::Ready,
                reason: Some("all pods ready".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(last.seq, 22);
    assert!(last.is_terminal());

    let all = db.events(&a.id, 0).await.unwrap();
    assert_eq!(all.len(), 22);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(all[0], first);
    assert_eq!(all[21], last, "kinds survive the round trip");
    let tail = db.events(&a.id, 20).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [21, 22]);
    assert_eq!(db.events(&b.id, 0).await.unwrap(), [other]);
}

#[tokio::test]
async fn events_of_a_missing_store_are_refused() {
    let (_dir, db) = fresh().await;
    let err = db
        .append_event(&id("nope"), Timestamp(1), &step("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound { .. }), "{err:?}");
    assert!(db.events(&id("nope"), 0).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- users and passwords

#[tokio::test]
async fn passwords_verify_only_for_the_right_user_and_password() {
    let (_dir, db) = fresh().await;
    let created = db
        .create_user("ivy", PASSWORD, Role::Admin, Quota::default())
        .await
        .unwrap();
    assert_eq!(created.role, Role::Admin);

    let found = db.verify_password("ivy", PASSWORD).await.unwrap();
    assert_eq!(found, Some(created.clone()));
    assert_eq!(
        db.verify_password("ivy", "correct horse batterY")
            .await
            .unwrap(),
        None
    );
    assert_eq!(db.verify_password("ivy", "").await.unwrap(), None);
    assert_eq!(db.verify_password("nobody", PASSWORD).await.unwrap(), None);
    assert_eq!(db.verify_password("IVY", PASSWORD).await.unwrap(), None);

    db.set_password("ivy", "a brand new password")
        .await
        .unwrap();
    assert_eq!(db.verify_password("ivy", PASSWORD).await.unwrap(), None);
    assert!(
        db.verify_password("ivy", "a brand new password")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        db.set_password("nobody", "whatever123").await,
        Err(Error::UserNotFound { .. })
    ));
}

// Regression: nothing recorded when a password changed, so the HTTP layer could not refuse
// access tokens issued under the old one.
#[tokio::test]
async fn a_password_change_moves_password_changed_at_and_nothing_else_does() {
    let (_dir, db) = fresh().await;
    let created = db
        .create_user("iris", PASSWORD, Role::User, Quota::default())
        .await
        .unwrap();
    assert_eq!(created.password_changed_at, created.created_at);

    let requoted = db
        .set_quota(
            "iris",
            Quota {
                max_stores: 9,
                max_storage_gib: 9,
            },
        )
        .await
        .unwrap();
    let promoted = db.set_role("iris", Role::Admin).await.unwrap();
    assert_eq!(requoted.password_changed_at, created.password_changed_at);
    assert_eq!(promoted.password_changed_at, created.password_changed_at);

    // Twice in a row, likely within one millisecond: each change gets a later stamp.
    let mut last = created.password_changed_at;
    for password in ["a brand new password", "and another one"] {
        db.set_password("iris", password).await.unwrap();
        let now = db.get_user("iris").await.unwrap().unwrap();
        assert!(now.password_changed_at > last, "{now:?} after {last:?}");
        assert_eq!(
            db.verify_password("iris", password).await.unwrap(),
            Some(now.clone())
        );
        last = now.password_changed_at;
    }
}

#[tokio::test]
async fn the_stored_hash_is_argon2id_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storefactory.db");
    let db = Database::open(&path).await.unwrap();
    user(&db, "jack", 1, 1).await;
    drop(db);
    let hash: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
    let (_dir, db) = fresh().await;
    user(&db, "kate", 1, 1).await;

    // Interleaved, and compared by their fastest run: noise only ever adds time, so the
    // minimum is what the code itself costs. Without the dummy hash an unknown user would
    // answer in well under a hundredth of the time.
    let (mut wrong, mut unknown) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let started = Instant::now();
        assert!(
            db.verify_password("kate", "wrong password")
                .await
                .unwrap()
                .is_none()
        );
        wrong = wrong.min(started.elapsed());
        let started = Instant::now();
        assert!(
            db.verify_password("nobody", "wrong password")
                .await
                .unwrap()
                .is_none()
        );
        unknown = unknown.min(started.elapsed());
    }
    eprintln!("fastest wrong password {wrong:?}, fastest unknown user {unknown:?}");
    assert!(
        unknown * 2 > wrong,
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
    assert!(
        wrong * 2 > unknown,
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn password_hashing_does_not_block_the_runtime_thread() {
    // On a single-threaded runtime a ticker only runs while the one worker thread is free;
    // if Argon2 (or SQLite) ran on it, the ticker would stall for the whole verification.
    let (_dir, db) = fresh().await;
    user(&db, "lena", 1, 1).await;
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let started = Instant::now();
    for _ in 0..3 {
        db.verify_password("lena", "wrong password").await.unwrap();
    }
    let elapsed = started.elapsed();
    ticker.abort();
    let ticks = ticks.load(Ordering::Relaxed);
    eprintln!("{ticks} ticks during {elapsed:?} of password verification");
    // One tick per 2 ms at best; a quarter of that leaves room for scheduling slack, and is
    // still far more than the 3 or so a blocked thread would manage between calls.
    let possible = u32::try_from(elapsed.as_millis() / 2).unwrap();
    assert!(
        ticks * 4 >= possible && ticks > 10,
        "{ticks} ticks in {elapsed:?}: the runtime thread was blocked"
    );
}

// Regression: every login ran Argon2 (19 MiB, a core for a good while) on the blocking pool
// without limit, so a burst of logins with made-up usernames took gigabytes and every
// blocking thread, and all database calls queued behind them.
#[test]
fn concurrent_logins_do_not_starve_database_reads() {
    // A blocking pool barely larger than the machine's cores, as a burst leaves it: without
    // a bound on password work, the verifications take every thread and the read waits for
    // nearly all of them.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores + 2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dir, db) = fresh().await;
        db.set_setting("k", "v").await.unwrap();
        let logins = cores * 4;
        let finished = Arc::new(AtomicU32::new(0));
        let verifications: Vec<_> = (0..logins)
            .map(|i| {
                let (db, finished) = (db.clone(), Arc::clone(&finished));
                tokio::spawn(async move {
                    let user = format!("nobody-{i}");
                    let found = db.verify_password(&user, "wrong password").await.unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                    found
                })
            })
            .collect();
        // Let the burst reach the blocking pool before the read arrives.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let value = db.get_setting("k").await.unwrap();
        let read_took = started.elapsed();
        let done_before_read = finished.load(Ordering::SeqCst);
        for verification in verifications {
            assert!(verification.await.unwrap().is_none());
        }
        eprintln!(
            "read took {read_took:?}; {done_before_read} of {logins} verifications were done"
        );
        assert_eq!(value.as_deref(), Some("v"));
        assert!(
            (done_before_read as usize) < logins / 2,
            "the read waited for {done_before_read} of {logins} password verifications"
        );
    });
}

#[tokio::test]
async fn users_are_unique_and_validated() {
    let (_dir, db) = fresh().await;
    user(&db, "liam", 1, 1).await;
    let again = db
        .create_user("liam", "another password", Role::Admin, Quota::default())
        .await;
    assert!(matches!(again, Err(Error::UserExists { .. })), "{again:?}");
    assert_eq!(db.get_user("liam").await.unwrap().unwrap().role, Role::User);

    let bad_name = db
        .create_user("Liam Smith", PASSWORD, Role::User, Quota::default())
        .await;
    assert!(
        matches!(bad_name, Err(Error::InvalidUsername { .. })),
        "{bad_name:?}"
    );
    let short = db
        .create_user("mia", "short", Role::User, Quota::default())
        .await;
    assert!(
        matches!(short, Err(Error::InvalidPassword { .. })),
        "{short:?}"
    );
    assert_eq!(db.get_user("mia").await.unwrap(), None);
}

#[tokio::test]
async fn users_are_listed_and_updated() {
    let (_dir, db) = fresh().await;
    user(&db, "zoe", 1, 1).await;
    user(&db, "adam", 2, 2).await;
    let names: Vec<_> = db
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["adam", "zoe"]);

    let promoted = db.set_role("zoe", Role::Admin).await.unwrap();
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(db.get_user("zoe").await.unwrap(), Some(promoted));
    assert!(matches!(
        db.set_role("nobody", Role::Admin).await,
        Err(Error::UserNotFound { .. })
    ));
    assert!(matches!(
        db.set_quota("nobody", Quota::default()).await,
        Err(Error::UserNotFound { .. })
    ));
    assert_eq!(db.usage("nobody").await.unwrap(), Usage::default());
}

// ---------------------------------------------------------------- audit log

#[tokio::test]
async fn audit_entries_come_back_in_order_per_user() {
    let (_dir, db) = fresh().await;
    let addr: IpAddr = "2001:db8::7".parse().unwrap();
    let actions = [
        ("nina", "login"),
        ("omar", "login"),
        ("nina", "store.create"),
        ("omar", "store.delete"),
        ("nina", "store.delete"),
    ];
    let mut recorded = Vec::new();
    for (actor, action) in actions {
        recorded.push(
            db.record_audit(
                AuditRecord::new(action)
                    .actor(actor)
                    .target("ab12")
                    .detail("via test")
                    .client_addr(addr),
            )
            .await
            .unwrap(),
        );
    }
    db.record_audit(AuditRecord::new("login.failed").detail("unknown user"))
        .await
        .unwrap();

    let all = db.audit_log(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(
        all.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
    assert_eq!(
        all[..5],
        recorded[..],
        "entries round-trip, address included"
    );
    assert_eq!(all[5].actor, None);

    let nina: Vec<_> = db
        .audit_log(&AuditFilter::actor("nina"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(nina, ["login", "store.create", "store.delete"]);

    let latest_two = db
        .audit_log(&AuditFilter {
            limit: Some(2),
            newest_first: true,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(latest_two, [all[5].clone(), all[4].clone()]);

    let deletes_after_first = db
        .audit_log(&AuditFilter {
            action: Some("store.delete".into()),
            after_id: Some(all[3].id),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(deletes_after_first, [all[4].clone()]);
}

// ---------------------------------------------------------------- settings and backup

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_survive_and_the_first_proposed_value_wins() {
    let (_dir, db) = fresh().await;
    assert_eq!(db.get_setting("signing-key").await.unwrap(), None);

    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.setting_or_insert("signing-key", &format!("key-{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "every starter got the same key: {seen:?}");
    assert_eq!(
        db.get_setting("signing-key").await.unwrap(),
        Some(seen[0].clone())
    );

    db.set_setting("signing-key", "rotated").await.unwrap();
    assert_eq!(
        db.get_setting("signing-key").await.unwrap().as_deref(),
        Some("rotated")
    );
}

#[tokio::test]
async fn a_backup_is_a_complete_database_taken_while_in_use() {
    let (dir, db) = fresh().await;
    user(&db, "pia", 5, 50).await;
    db.insert_store(&store("bk1", "pia", 1)).await.unwrap();
    db.append_event(&id("bk1"), Timestamp(1), &step("apply"))
        .await
        .unwrap();

    let backup = dir.path().join("backup.db");
    db.backup_to(&backup).await.unwrap();
    // The original stays writable.
    db.insert_store(&store("bk2", "pia", 1)).await.unwrap();

    let copy = Database::open(&backup).await.unwrap();
    assert!(
        copy.verify_password("pia", PASSWORD)
            .await
            .unwrap()
            .is_some()
    );
    assert!(copy.get_store(&id("bk1")).await.unwrap().is_some());
    assert_eq!(
        copy.get_store(&id("bk2")).await.unwrap(),
        None,
        "taken before bk2"
    );
    assert_eq!(copy.events(&id("bk1"), 0).await.unwrap().len(), 1);

    let err = db.backup_to(&backup).await.unwrap_err();
    assert!(
        matches!(err, Error::Backup { .. }),
        "an existing backup is not overwritten: {err:?}"
    );
}

#[tokio::test]
async fn status_changes_follow_the_lifecycle_and_deleting_is_sticky() {
    let (_dir, db) = fresh().await;
    user(&db, "hank", 10, 100).await;
    let record = store("cas1", "hank", 1);
    db.insert_store(&record).await.unwrap();
    db.set_status(&record.id, StoreStatus::Provisioning, None)
        .await
        .unwrap();
    db.set_status(&record.id, StoreStatus::Deleting, None)
        .await
        .unwrap();
    // A reconcile that read `provisioning` before the delete must not undo it.
    let err = db
        .set_status(&record.id, StoreStatus::Ready, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::InvalidTransition {
                from: StoreStatus::Deleting,
                to: StoreStatus::Ready,
                ..
            }
        ),
        "{err:?}"
    );
    let current = db.get_store(&record.id).await.unwrap().unwrap();
    assert_eq!(current.status, StoreStatus::Deleting);
}

#[tokio::test]
async fn store_pages_cover_every_store_once_in_order_and_end() {
    let (_dir, db) = fresh().await;
    user(&db, "pia", 20, 100).await;
    user(&db, "quin", 20, 100).await;
    for n in 0..7 {
        db.insert_store(&store(&format!("p{n}"), "pia", 1))
            .await
            .unwrap();
        db.insert_store(&store(&format!("q{n}"), "quin", 1))
            .await
            .unwrap();
    }
    db.set_status(&id("p3"), StoreStatus::Deleting, None)
        .await
        .unwrap();
    db.set_status(&id("p3"), StoreStatus::Deleted, None)
        .await
        .unwrap();

    let filter = StoreFilter::owner("pia");
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = db
            .list_stores_page(&filter, cursor, 2, StoreOrder::OldestFirst)
            .await
            .unwrap();
        assert!(page.stores.len() <= 2);
        pages += 1;
        seen.extend(page.stores.iter().map(|s| s.id.to_string()));
        // A cursor survives its text form, as a client hands it back.
        cursor = page.next.map(|c| c.to_string().parse().unwrap());
        if cursor.is_none() {
            break;
        }
        // A store created while paging shows up at the end.
        if pages == 1 {
            db.insert_store(&store("p7", "pia", 1)).await.unwrap();
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p4", "p5", "p6", "p7"]);
    assert_eq!(pages, 4, "the last page is not followed by an empty one");

    let everything = db
        .list_stores_page(&StoreFilter::default(), None, 100, StoreOrder::default())
        .await
        .unwrap();
    assert_eq!(everything.stores.len(), 14);
    assert!(everything.next.is_none());
    let with_deleted = StoreFilter {
        owner: Some("pia".to_owned()),
        include_deleted: true,
    };
    let page = db
        .list_stores_page(&with_deleted, None, 100, StoreOrder::OldestFirst)
        .await
        .unwrap();
    assert_eq!(page.stores.len(), 8);

    // Newest first: the same stores backwards, in pages of three.
    let first = db
        .list_stores_page(&filter, None, 3, StoreOrder::NewestFirst)
        .await
        .unwrap();
    let ids: Vec<String> = first.stores.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["p7", "p6", "p5"]);
    let second = db
        .list_stores_page(&filter, first.next, 3, StoreOrder::NewestFirst)
        .await
        .unwrap();
    let ids: Vec<String> = second.stores.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["p4", "p2", "p1"]);
    let last = db
        .list_stores_page(&filter, second.next, 3, StoreOrder::NewestFirst)
        .await
        .unwrap();
    assert_eq!(last.stores.len(), 1);
    assert!(last.next.is_none());

    for bad in ["", "-1", "1e3", " 4", "abc", "99999999999999999999"] {
        assert!(
            bad.parse::<storefactory_sql::StoreCursor>().is_err(),
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------- hardening (issue 12)

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// Attack: another local account reads the database (password hashes, store records) or a
// backup of it, created under a permissive umask.
#[cfg(unix)]
#[tokio::test]
async fn database_wal_shm_and_backup_files_are_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storefactory.db");
    let db = Database::open(&path).await.unwrap();
    user(&db, "mode", 5, 50).await;
    db.insert_store(&store("mode1", "mode", 1)).await.unwrap();
    let side = |suffix: &str| dir.path().join(format!("storefactory.db{suffix}"));
    assert!(side("-wal").exists() && side("-shm").exists());
    for file in [path.clone(), side("-wal"), side("-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let backup = dir.path().join("copy.db");
    db.backup_to(&backup).await.unwrap();
    assert_eq!(mode(&backup), 0o600);
    assert!(Database::open(&backup).await.is_ok(), "the copy is usable");

    // A database made world-readable by an older version is tightened when opened.
    drop(db);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _db = Database::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o600);
}

// Attack: a user with a quota of one loops create + delete with the largest product list;
// every deleted record used to keep its products and events forever.
#[tokio::test]
async fn deleted_stores_drop_their_products_and_are_purged_after_retention() {
    let (_dir, db) = fresh().await;
    user(&db, "churn", 1, 50).await;
    let product = storefactory_core::product::parse_products("Mug|4.50|A big mug").unwrap();
    for turn in 0..20 {
        let mut record = store(&format!("churn{turn}"), "churn", 1);
        record.spec.products = vec![product[0].clone(); 200];
        db.insert_store(&record).await.unwrap();
        db.append_event(&record.id, Timestamp(1), &status(StoreStatus::Initialized))
            .await
            .unwrap();
        db.set_status(&record.id, StoreStatus::Deleting, None)
            .await
            .unwrap();
        let deleted = db
            .set_status(&record.id, StoreStatus::Deleted, None)
            .await
            .unwrap();
        assert!(deleted.spec.products.is_empty(), "the answer is compacted");
        let stored = db.get_store(&record.id).await.unwrap().unwrap();
        assert!(
            stored.spec.products.is_empty(),
            "products dropped on delete"
        );
        assert_eq!(stored.status, StoreStatus::Deleted);
    }
    // A live store keeps everything and is never purged.
    let mut live = store("live1", "churn", 1);
    live.spec.products = product.clone();
    db.insert_store(&live).await.unwrap();
    db.append_event(&live.id, Timestamp(1), &step("apply"))
        .await
        .unwrap();

    // Nothing is older than a retention that started before the deletions.
    assert_eq!(db.purge_deleted_stores(Timestamp(0)).await.unwrap(), 0);
    let purged = db
        .purge_deleted_stores(Timestamp(Timestamp::now().0 + 1))
        .await
        .unwrap();
    assert_eq!(purged, 20);
    let all = StoreFilter {
        owner: None,
        include_deleted: true,
    };
    let left = db.list_stores(&all).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].spec.products, product);
    assert!(db.get_store(&id("churn3")).await.unwrap().is_none());
    // The feed holds the live store's event only.
    let feed = db.feed(0, 1000).await.unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0].1.store_id, live.id);
}

#[tokio::test]
async fn revoking_tokens_and_disabling_move_the_token_version() {
    let (_dir, db) = fresh().await;
    user(&db, "tv", 1, 1).await;
    let fresh_user = db.get_user("tv").await.unwrap().unwrap();
    assert_eq!((fresh_user.token_version, fresh_user.disabled), (0, false));
    assert_eq!(db.revoke_tokens("tv").await.unwrap().token_version, 1);
    let disabled = db.set_disabled("tv", true).await.unwrap();
    assert_eq!((disabled.token_version, disabled.disabled), (2, true));
    let enabled = db.set_disabled("tv", false).await.unwrap();
    assert_eq!((enabled.token_version, enabled.disabled), (2, false));
    assert!(matches!(
        db.revoke_tokens("nobody").await,
        Err(Error::UserNotFound { .. })
    ));
}

#[tokio::test]
async fn user_pages_cover_every_user_once() {
    let (_dir, db) = fresh().await;
    for n in 0..7 {
        user(&db, &format!("page{n}"), 1, 1).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = db.list_users_page(after.as_deref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|u| u.username.clone());
        seen.extend(page.into_iter().map(|u| u.username));
    }
    assert_eq!(seen, (0..7).map(|n| format!("page{n}")).collect::<Vec<_>>());
}

// A busy server may look at the feed for the first time after a webhook was registered and
// its first event recorded: that event is delivered, not skipped with the history before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_event_of_a_webhook_registered_before_the_first_look_is_delivered() {
    let (_dir, db) = fresh().await;
    user(&db, "bea", 5, 50).await;
    let id = StoreId::new("cd34").unwrap();
    let spec = StoreSpec::new(id.clone(), "bea", "cd34.example.com");
    db.insert_store(&StoreRecord::new(spec, "Shop", "woocommerce"))
        .await
        .unwrap();
    let status = |status| EventKind::Status {
        status,
        reason: None,
    };
    // History from before the webhook: nobody's.
    db.append_event(&id, Timestamp::now(), &status(StoreStatus::Provisioning))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.create_webhook(
        NewWebhook {
            id: "wh_b".to_owned(),
            owner: "bea".to_owned(),
            url: "https://hooks.example.invalid/".to_owned(),
            sealed_secret: "sealed".to_owned(),
            events: WebhookEvents::All,
            all_stores: false,
        },
        1,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.append_event(&id, Timestamp::now(), &status(StoreStatus::Ready))
        .await
        .unwrap();
    assert_eq!(
        db.fan_out_webhook_events(512, 200).await.unwrap(),
        1,
        "the event after the webhook, and only it"
    );
    assert_eq!(db.fan_out_webhook_events(512, 200).await.unwrap(), 0);
}

// Two processes sharing the file (a server and a replica, say): each event becomes one
// delivery per webhook, and a delivery is claimed by one of them at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_fan_out_and_claims_are_exclusive_between_processes() {
    let (dir, a) = fresh().await;
    let b = Database::open(dir.path().join("storefactory.db"))
        .await
        .unwrap();
    user(&a, "ann", 5, 50).await;
    // The first look only places the cursor: events from before webhooks go to nobody.
    assert_eq!(a.fan_out_webhook_events(512, 200).await.unwrap(), 0);
    let webhook = a
        .create_webhook(
            NewWebhook {
                id: "wh_1".to_owned(),
                owner: "ann".to_owned(),
                url: "https://hooks.example.invalid/".to_owned(),
                sealed_secret: "sealed".to_owned(),
                events: WebhookEvents::All,
                all_stores: false,
            },
            1,
        )
        .await
        .unwrap();
    let second = NewWebhook {
        id: "wh_2".to_owned(),
        owner: "ann".to_owned(),
        url: webhook.url.clone(),
        sealed_secret: "sealed".to_owned(),
        events: WebhookEvents::Status,
        all_stores: false,
    };
    assert!(matches!(
        b.create_webhook(second, 1).await,
        Err(Error::WebhookLimit { max: 1, .. })
    ));

    let id = StoreId::new("ab12").unwrap();
    let spec = StoreSpec::new(id.clone(), "ann", "ab12.example.com");
    a.insert_store(&StoreRecord::new(spec, "Shop", "woocommerce"))
        .await
        .unwrap();
    for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
        let kind = EventKind::Status {
            status,
            reason: None,
        };
        a.append_event(&id, Timestamp::now(), &kind).await.unwrap();
    }
    let (x, y) = tokio::join!(
        a.fan_out_webhook_events(512, 200),
        b.fan_out_webhook_events(512, 200)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 2, "each event queued once");
    assert_eq!(a.fan_out_webhook_events(512, 200).await.unwrap(), 0);

    let lease = Duration::from_secs(60);
    let (x, y) = tokio::join!(
        a.claim_webhook_deliveries(8, lease, 3),
        b.claim_webhook_deliveries(8, lease, 3)
    );
    let claimed: Vec<_> = x.unwrap().into_iter().chain(y.unwrap()).collect();
    assert_eq!(
        claimed.len(),
        1,
        "one in flight per webhook, claimed by one process"
    );
    assert_eq!(claimed[0].attempt, 1);
    assert!(claimed[0].payload.contains("provisioning"), "oldest first");
    assert!(
        b.claim_webhook_deliveries(8, lease, 3)
            .await
            .unwrap()
            .is_empty()
    );

    a.finish_webhook_delivery(claimed[0].id, DeliveryOutcome::Delivered { status: 204 })
        .await
        .unwrap();
    let next = b.claim_webhook_deliveries(8, lease, 3).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].payload.contains("ready"));
    let log = a.webhook_deliveries("wh_1", 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].state, DeliveryState::Delivered);
    assert_eq!(log[1].last_status, Some(204));
    assert_eq!(log[0].state, DeliveryState::Pending);
    assert_eq!(log[0].attempts, 1);

    // Deleting the webhook takes its log along.
    assert!(a.delete_webhook("wh_1").await.unwrap());
    assert!(a.webhook_deliveries("wh_1", 10).await.unwrap().is_empty());
    assert!(!a.delete_webhook("wh_1").await.unwrap());
}

// Every edge registers webhooks through `register_webhook`: the secret it answers is the
// one sealed for the dispatcher, under the key a server would use, and a key the server did
// not start with is refused before anything is stored.
#[tokio::test]
async fn a_registered_webhook_secret_opens_only_with_the_servers_key() {
    use storefactory_core::seal::SealingKey;
    use storefactory_sql::{WebhookRequest, WebhookRules, seal_context};
    let (_dir, db) = fresh().await;
    user(&db, "ann", 1, 1).await;
    let request = |url: &str| WebhookRequest {
        owner: "ann".into(),
        url: url.into(),
        events: WebhookEvents::All,
        all_stores: false,
    };
    let rules = WebhookRules::default();

    // No key given and no server yet: the key a server would generate and keep.
    let key = db.sealing_key(None).await.unwrap();
    let registered = db
        .register_webhook(request(" https://hooks.example.com/in "), rules, &key)
        .await
        .unwrap();
    assert_eq!(registered.webhook.url, "https://hooks.example.com/in");
    assert!(!format!("{registered:?}").contains(&registered.secret));
    let stored = db
        .get_webhook(&registered.webhook.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.sealed_secret.contains(&registered.secret));
    let server_key = SealingKey::derive(
        db.get_setting(storefactory_sql::TOKEN_KEY_SETTING)
            .await
            .unwrap()
            .unwrap()
            .as_bytes(),
    );
    let opened = server_key
        .open(&seal_context(&stored.id), &stored.sealed_secret)
        .expect("the server's key opens the secret");
    assert_eq!(opened, registered.secret.as_bytes());
    assert!(
        server_key
            .open(&seal_context("wh_other"), &stored.sealed_secret)
            .is_err(),
        "a secret is bound to its webhook"
    );

    // A server started with its own key: the database's key no longer seals.
    let given = "a token key given to the server, thirty-two bytes+";
    db.record_sealing_key(&SealingKey::derive(given.as_bytes()))
        .await
        .unwrap();
    let refused = db.sealing_key(None).await.unwrap_err();
    assert!(
        matches!(refused, Error::KeyMismatch { given: false }),
        "{refused}"
    );
    assert_eq!(refused.field(), Some("token_key"));
    assert!(db.sealing_key(Some(given)).await.is_ok());

    // The other rules, with the kinds the edges map.
    let invalid = db
        .register_webhook(request("http://hooks.example.com/"), rules, &key)
        .await
        .unwrap_err();
    assert_eq!(
        (invalid.field(), invalid.to_string().as_str()),
        (Some("url"), "url: must use https")
    );
    let not_admin = db
        .register_webhook(
            WebhookRequest {
                all_stores: true,
                ..request("https://hooks.example.com/all")
            },
            rules,
            &key,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(not_admin, Error::WebhookNotAdmin { .. }),
        "{not_admin}"
    );
    let nobody = db
        .register_webhook(
            WebhookRequest {
                owner: "nobody".into(),
                ..request("https://hooks.example.com/x")
            },
            rules,
            &key,
        )
        .await
        .unwrap_err();
    assert!(matches!(nobody, Error::UserNotFound { .. }), "{nobody}");
    let limited = db
        .register_webhook(
            request("https://hooks.example.com/2"),
            WebhookRules {
                max_per_owner: 1,
                ..rules
            },
            &key,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(limited, Error::WebhookLimit { max: 1, .. }),
        "{limited}"
    );
    assert_eq!(db.list_webhooks(None, 10).await.unwrap().len(), 1);

    // The log as users ask for it.
    let id = registered.webhook.id;
    assert!(db.webhook_delivery_log(&id, 200).await.unwrap().is_empty());
    for limit in [0, 201] {
        let error = db.webhook_delivery_log(&id, limit).await.unwrap_err();
        assert_eq!(error.field(), Some("limit"), "{error}");
    }
    db.remove_webhook(&id).await.unwrap();
    assert!(matches!(
        db.remove_webhook(&id).await,
        Err(Error::WebhookNotFound { .. })
    ));
    assert!(matches!(
        db.webhook_delivery_log(&id, 10).await,
        Err(Error::WebhookNotFound { .. })
    ));
}

// Two processes (two handles on one file), each adding the same domain to its own store
// many times at once: every time exactly one wins, and the loser's store is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_of_one_domain_never_both_win() {
    use storefactory_core::port::DomainChange;
    let (dir, first) = fresh().await;
    let second = Database::open(dir.path().join("storefactory.db"))
        .await
        .unwrap();
    user(&first, "amy", 10, 100).await;
    for id in ["race1", "race2"] {
        first.insert_store(&store(id, "amy", 1)).await.unwrap();
        first
            .set_status(&StoreId::new(id).unwrap(), StoreStatus::Provisioning, None)
            .await
            .unwrap();
        first
            .set_status(&StoreId::new(id).unwrap(), StoreStatus::Ready, None)
            .await
            .unwrap();
    }
    let allowed = [StoreStatus::Ready];
    let event = EventKind::Step {
        step: "domain".into(),
        message: "added".into(),
    };
    let (race1, race2) = (id("race1"), id("race2"));
    for round in 0..20 {
        let host = format!("shop{round}.example.com");
        let add = DomainChange::Add(host.clone());
        let (a, b) = tokio::join!(
            first.change_domain(&race1, &add, &allowed, Timestamp(1), &event),
            second.change_domain(&race2, &add, &allowed, Timestamp(1), &event),
        );
        let won = [a.is_ok(), b.is_ok()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}");
        let loser = if won[0] { b } else { a };
        assert!(
            matches!(loser, Err(RepositoryError::DomainTaken { ref host }) if host.starts_with("shop")),
            "{loser:?}"
        );
        let holders = {
            let mut n = 0;
            for id in ["race1", "race2"] {
                let record = first
                    .get_store(&StoreId::new(id).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                n += usize::from(record.spec.ingress.domains.contains(&host));
            }
            n
        };
        assert_eq!(holders, 1, "round {round}");
        // Remove it again so the next round stays under the limit.
        let winner = if won[0] { "race1" } else { "race2" };
        first
            .change_domain(
                &StoreId::new(winner).unwrap(),
                &DomainChange::Remove(host),
                &allowed,
                Timestamp(2),
                &event,
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn releasing_memory_keeps_every_store_readable_and_writable() {
    let (_dir, db) = fresh().await;
    user(&db, "ann", 10, 100).await;
    db.insert_store(&store("ab12", "ann", 2)).await.unwrap();
    // Fill the pool of readers, then give their caches back.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let db = db.clone();
        reads.spawn(async move { db.get_store(&id("ab12")).await });
    }
    for read in reads.join_all().await {
        assert_eq!(read.unwrap().unwrap().owner, "ann");
    }
    db.release_memory().await.unwrap();
    assert_eq!(
        db.get_store(&id("ab12")).await.unwrap().unwrap().owner,
        "ann"
    );
    db.insert_store(&store("cd34", "ann", 2)).await.unwrap();
    assert_eq!(db.usage("ann").await.unwrap().stores, 2);
}
