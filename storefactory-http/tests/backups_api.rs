//! The backup, restore and clone routes against the local control plane: refusals are
//! clear and change nothing (a store that is not ready, a backup that does not exist, a
//! clone over quota or without a backup). The mechanism itself is tested in
//! storefactory-core's `backup.rs`; the transport in `backup_transport.rs`.

mod common;

use anyhow::Result;
use axum::http::{Method, StatusCode};
use serde_json::json;
use storefactory_core::backup::{
    BackupKind, BackupOutcome, BackupRecord, BackupRepository, UploadToken,
};
use storefactory_core::spec::StoreId;
use storefactory_sql::Quota;

use common::{app_with, config, create_store, send, user_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backups_restores_and_clones_change_nothing() -> Result<()> {
    let mut config = config();
    config.provisioner.backups.endpoint =
        Some("http://storefactory.storefactory.svc:8080@storefactory".parse()?);
    let app = app_with(config, true).await?;
    let alice = user_token(
        &app,
        "alice",
        Quota {
            max_stores: 2,
            max_storage_gib: 40,
        },
    )
    .await?;
    let created = create_store(&app.router, &alice, json!({ "name": "Shop" })).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let store = StoreId::new(&id)?;

    // Not ready (no reconciler runs here): a backup is refused, nothing is recorded.
    let refused = send(
        &app.router,
        Method::POST,
        &format!("/api/stores/{id}/backups"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.code(), "invalid_state");
    assert!(refused.message().contains("ready"), "{}", refused.text);
    let list = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}/backups"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(list.body["backups"], json!([]));

    // A backup that does not exist: 404 that says so.
    let missing = send(
        &app.router,
        Method::POST,
        &format!("/api/stores/{id}/restore"),
        Some(&alice),
        Some(json!({ "backup": "nosuchbackup" })),
    )
    .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    assert!(missing.message().contains("backup nosuchbackup not found"));
    let missing = send(
        &app.router,
        Method::DELETE,
        &format!("/api/stores/{id}/backups/nosuchbackup"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // No completed backup to clone from: 409, nothing created.
    let clone = |token: String| {
        let router = app.router.clone();
        let id = id.clone();
        async move {
            send(
                &router,
                Method::POST,
                &format!("/api/stores/{id}/clone"),
                Some(&token),
                Some(json!({ "name": "Staging" })),
            )
            .await
        }
    };
    let refused = clone(alice.clone()).await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.message().contains("no completed backup"));

    // With one, alice's quota (two stores, both in use) refuses the clone: 403, nothing
    // created.
    let second = create_store(&app.router, &alice, json!({ "name": "Other" })).await?;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let token = UploadToken::generate();
    let backup = BackupRecord::pending(store.clone(), BackupKind::Manual, &token);
    app.db.insert_backup(&backup).await?;
    app.db
        .settle_backup(
            &backup.id,
            BackupOutcome::Completed {
                size_bytes: 10,
                sha256: "0".repeat(64),
            },
        )
        .await?;
    let over = clone(alice.clone()).await?;
    assert_eq!(over.status, StatusCode::FORBIDDEN, "{}", over.text);
    assert_eq!(over.code(), "quota_exceeded");
    let stores = send(&app.router, Method::GET, "/api/stores", Some(&alice), None).await?;
    assert_eq!(
        stores.body["stores"].as_array().map(Vec::len),
        Some(2),
        "{}",
        stores.text
    );

    // Someone else sees none of it.
    let bob = user_token(&app, "bob", Quota::default()).await?;
    for (method, path, body) in [
        (Method::GET, format!("/api/stores/{id}/backups"), None),
        (
            Method::GET,
            format!("/api/stores/{id}/backups/{}", backup.id),
            None,
        ),
        (
            Method::POST,
            format!("/api/stores/{id}/restore"),
            Some(json!({ "backup": backup.id })),
        ),
    ] {
        let hidden = send(&app.router, method, &path, Some(&bob), body).await?;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{path}");
    }
    let hidden = clone(bob.clone()).await?;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    // Listed for its owner, with size and times.
    let list = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}/backups"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(list.body["backups"][0]["size_bytes"], 10);
    assert!(list.body["backups"][0]["finished_at"].as_i64().is_some());
    // A completed backup can be deleted: then it is gone.
    let deleted = send(
        &app.router,
        Method::DELETE,
        &format!("/api/stores/{id}/backups/{}", backup.id),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert!(app.db.get_backup(&backup.id).await?.is_none());
    Ok(())
}
