//! Backup records on SQLite: what core's Provisioner and the platform's endpoints rely on.

use storefactory_core::backup::{
    BackupId, BackupKind, BackupOutcome, BackupRecord, BackupRepository, BackupStatus, UploadToken,
};
use storefactory_core::port::StoreRepository;
use storefactory_core::spec::StoreId;
use storefactory_core::store::Timestamp;
use storefactory_sql::Database;

async fn fresh() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("sf.db")).await.unwrap();
    (dir, db)
}

fn backup(store: &str, at: i64) -> (BackupRecord, UploadToken) {
    let token = UploadToken::generate();
    let mut record =
        BackupRecord::pending(StoreId::new(store).unwrap(), BackupKind::Manual, &token);
    record.created_at = Timestamp(at);
    (record, token)
}

#[tokio::test]
async fn backups_are_listed_newest_first_per_store_and_settle_once() {
    let (_dir, db) = fresh().await;
    let repo = db.backups().expect("the database keeps backups");
    let (old, _) = backup("ab12", 1_000);
    let (new, token) = backup("ab12", 2_000);
    let (other, _) = backup("cd34", 1_500);
    for b in [&old, &new, &other] {
        repo.insert_backup(b).await.unwrap();
    }
    let listed = repo.list_backups(&old.store_id).await.unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        [new.id.clone(), old.id.clone()]
    );
    assert_eq!(repo.pending_backups().await.unwrap().len(), 3);
    // The token's hash round-trips while pending, so the endpoint can check the token.
    let read = repo.get_backup(&new.id).await.unwrap().unwrap();
    assert!(read.accepts(token.expose()));
    assert_eq!(read, new);

    let done = repo
        .settle_backup(
            &new.id,
            BackupOutcome::Completed {
                size_bytes: 1234,
                sha256: "ab".repeat(32),
            },
        )
        .await
        .unwrap()
        .expect("settled");
    assert_eq!(done.status, BackupStatus::Completed);
    assert_eq!(done.size_bytes, Some(1234));
    assert!(done.finished_at.is_some() && done.token_hash.is_none());
    // The first settlement wins: a Job finishing later does not fail a completed backup.
    let again = repo
        .settle_backup(&new.id, BackupOutcome::Failed("late".into()))
        .await
        .unwrap();
    assert!(again.is_none());
    let read = repo.get_backup(&new.id).await.unwrap().unwrap();
    assert_eq!(read, done);
    assert!(
        !read.accepts(token.expose()),
        "a settled backup takes no more uploads"
    );

    let failed = repo
        .settle_backup(&old.id, BackupOutcome::Failed("Job failed".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("Job failed"));
    assert_eq!(
        repo.pending_backups().await.unwrap(),
        std::slice::from_ref(&other),
        "only the unsettled one is pending"
    );

    assert!(repo.delete_backup(&old.id).await.unwrap());
    assert!(!repo.delete_backup(&old.id).await.unwrap());
    assert!(repo.get_backup(&old.id).await.unwrap().is_none());
    let unknown = BackupId::generate();
    assert!(
        repo.settle_backup(&unknown, BackupOutcome::Failed("x".into()))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn backups_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sf.db");
    let (record, _) = backup("ab12", 5);
    {
        let db = Database::open(&path).await.unwrap();
        db.insert_backup(&record).await.unwrap();
    }
    let db = Database::open(&path).await.unwrap();
    assert_eq!(db.get_backup(&record.id).await.unwrap(), Some(record));
}
