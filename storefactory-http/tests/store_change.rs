//! `PATCH /api/stores/{id}` through the router: validation, authorization, what a change
//! answers and what a refused one leaves. The reconciler is not started, so a changed
//! store stays `updating` (the change's life on the cluster is tested in
//! storefactory-core/tests/store_change.rs).

mod common;

use anyhow::Result;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use storefactory_core::port::{Quota, StoreRepository};
use storefactory_core::spec::StoreId;
use storefactory_core::store::{EventKind, StoreStatus};

/// A store of the holder of `token`, made ready in the database; its id.
async fn ready_store(app: &TestApp, token: &str) -> Result<StoreId> {
    let reply = create_store(
        &app.router,
        token,
        json!({"sample_products": "T-Shirt|599|Cotton", "storage_size_gi": 2}),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = StoreId::new(reply.body["id"].as_str().expect("id"))?;
    for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
        app.db.set_status(&id, status, None).await?;
    }
    Ok(id)
}

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> Result<Reply> {
    send(
        &app.router,
        Method::PATCH,
        &format!("/api/stores/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_change_is_accepted_as_updating_and_shown() -> Result<()> {
    let app = app().await?;
    let alice = user_token(&app, "alice", Quota::default()).await?;
    let id = ready_store(&app, &alice).await?;
    let reply = patch(
        &app,
        &alice,
        id.as_str(),
        json!({
            "sample_products": [{"name": "Mug", "price": 3, "description": "Ceramic"}],
            "site_title": "Alice's Shop",
            "currency": "EUR",
            "storage_size_gi": "4",
            "wordpress_resources": {"cpu_request": "200m", "memory_request": "256Mi",
                                    "cpu_limit": "1", "memory_limit": "1Gi"}
        }),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.body["status"], "updating");
    assert_eq!(reply.body["storage_gi"], 4);
    assert_eq!(reply.body["storage_gib"], 5);

    let shown = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{id}"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(shown.body["status"], "updating");
    assert_eq!(shown.body["products"][0]["name"], "Mug");
    let record = app.db.get_store(&id).await?.expect("store");
    assert_eq!(record.spec.site_title, "Alice's Shop");
    assert_eq!(record.spec.currency.as_str(), "EUR");
    assert_eq!(record.spec.wordpress.resources.memory_limit.as_str(), "1Gi");
    // The owner's usage counts the bigger volume.
    assert_eq!(app.db.usage("alice").await?.storage_gib, 5);
    // The history says what changes.
    let events = app.db.events(&id, 0).await?;
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::Status { status: StoreStatus::Updating, reason: Some(r) }
                if r.contains("WordPress storage 2Gi -> 4Gi") && r.contains("currency USD -> EUR"))),
        "{events:#?}"
    );
    let audit = app
        .db
        .audit_log(&storefactory_sql::AuditFilter {
            target: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
    assert!(audit.iter().any(|e| e.action == "store.change"));

    // While it is updating, another change is refused.
    let reply = patch(&app, &alice, id.as_str(), json!({"site_title": "Again"})).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert!(
        reply.message().contains("only ready stores"),
        "{}",
        reply.text
    );
    Ok(())
}

#[tokio::test]
async fn bad_changes_are_refused_naming_the_field_and_change_nothing() -> Result<()> {
    let app = app().await?;
    let alice = user_token(
        &app,
        "alice",
        Quota {
            max_stores: 1,
            max_storage_gib: 6,
        },
    )
    .await?;
    let id = ready_store(&app, &alice).await?;
    let before = app.db.get_store(&id).await?.expect("store");
    for (body, status, field) in [
        (
            json!({"storage_size_gi": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("storage_size_gi"),
        ),
        (
            json!({"storage_size_gi": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("storage_size_gi"),
        ),
        (
            json!({"storage_size_gi": 2000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("storage_size_gi"),
        ),
        (
            json!({"currency": "euro"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("currency"),
        ),
        (
            json!({"site_title": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("site_title"),
        ),
        (
            json!({"sample_products": "Mug|free|Ceramic"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"wordpress_resources": {"cpu_request": "2", "memory_request": "1Mi",
                                           "cpu_limit": "1", "memory_limit": "1Mi"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("wordpress_resources.cpu_request"),
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, Some("change")),
        // 3 GiB in use, 6 allowed: 5 GiB more do not fit.
        (json!({"storage_size_gi": 7}), StatusCode::FORBIDDEN, None),
    ] {
        let reply = patch(&app, &alice, id.as_str(), body.clone()).await?;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{body}: {}", reply.text);
        }
        let message = reply.message().to_owned();
        assert!(!message.is_empty());
    }
    let smaller = patch(&app, &alice, id.as_str(), json!({"storage_size_gi": 1})).await?;
    assert!(
        smaller.message().contains("below the current size"),
        "{}",
        smaller.text
    );
    // Unknown fields and a body that is not JSON are the client's mistakes, not 500s.
    let unknown = patch(&app, &alice, id.as_str(), json!({"colour": "red"})).await?;
    assert!(unknown.status.is_client_error(), "{}", unknown.text);
    assert!(unknown.message().contains("colour"), "{}", unknown.text);
    let list = patch(&app, &alice, id.as_str(), json!([1, 2])).await?;
    assert!(list.status.is_client_error(), "{}", list.text);

    assert_eq!(app.db.get_store(&id).await?.expect("store"), before);
    assert_eq!(app.db.usage("alice").await?.storage_gib, 3);

    // A change to what the store already is changes nothing: 200, still ready.
    let same = patch(
        &app,
        &alice,
        id.as_str(),
        json!({"storage_size_gi": 2, "currency": "USD"}),
    )
    .await?;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(same.body["status"], "ready");
    assert_eq!(app.db.get_store(&id).await?.expect("store"), before);
    Ok(())
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_change_a_store() -> Result<()> {
    let app = app().await?;
    let alice = user_token(&app, "alice", Quota::default()).await?;
    let bob = user_token(&app, "bob", Quota::default()).await?;
    let admin = admin_token(&app).await?;
    let id = ready_store(&app, &alice).await?;
    let before = app.db.get_store(&id).await?.expect("store");
    let body = json!({"site_title": "Bob's now"});

    let theirs = patch(&app, &bob, id.as_str(), body.clone()).await?;
    let missing = patch(&app, &bob, StoreId::generate().as_str(), body.clone()).await?;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.text);
    assert_eq!(
        theirs.text, missing.text,
        "a store of another is not told apart"
    );
    assert_eq!(app.db.get_store(&id).await?.expect("store"), before);

    let anonymous = send(
        &app.router,
        Method::PATCH,
        &format!("/api/stores/{id}"),
        None,
        Some(body.clone()),
    )
    .await?;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let by_admin = patch(&app, &admin, id.as_str(), body).await?;
    assert_eq!(by_admin.status, StatusCode::ACCEPTED, "{}", by_admin.text);
    assert_eq!(by_admin.body["owner"], "alice");
    Ok(())
}
