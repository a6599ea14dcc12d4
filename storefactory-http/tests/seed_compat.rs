//! The clients of the product Storefactory replaces (its scripts and its React dashboard)
//! work unchanged: this replays the requests they make, as they make them, and checks the
//! shapes they read. Every answer is also checked against the OpenAPI document (by
//! `common::send_raw`).

mod common;

use anyhow::Result;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use storefactory_core::port::Quota;

/// The fields the seed's clients read from a store in a list.
const LISTED_FIELDS: [&str; 9] = [
    "id",
    "namespace",
    "url",
    "admin_url",
    "admin_user",
    "status",
    "owner",
    "storage_gi",
    "created_at",
];

/// The fields the seed's clients read from a created store.
const CREATED_FIELDS: [&str; 9] = [
    "id",
    "namespace",
    "url",
    "admin_url",
    "admin_user",
    "admin_password",
    "status",
    "created_at",
    "owner",
];

fn assert_fields(body: &Value, fields: &[&str]) {
    for field in fields {
        let value = &body[field];
        assert!(
            !value.is_null() && value != "",
            "{field} missing or empty: {body}"
        );
    }
}

/// The seed's dashboard puts `error` straight into the page: it must be a string.
fn assert_seed_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(
        reply.body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "error is not a string: {}",
        reply.text
    );
    assert_eq!(reply.body["code"], code, "{}", reply.text);
}

#[tokio::test]
async fn seed_health_is_healthy() -> Result<()> {
    let app = app_with(config(), false).await?;
    let reply = send(&app.router, Method::GET, "/health", None, None).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "healthy"}));
    Ok(())
}

#[tokio::test]
async fn seed_login_answers_token_user_id_and_username_or_invalid_credentials() -> Result<()> {
    let app = app_with(config(), false).await?;
    let ok = post_login(
        &app.router,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await?;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(
        ok.body["access_token"]
            .as_str()
            .is_some_and(|t| t.len() > 20)
    );
    assert_eq!(ok.body["user_id"], "admin");
    assert_eq!(ok.body["username"], "admin");

    for (username, password) in [("admin", "wrong-password"), ("nobody", "whatever-else")] {
        let refused = post_login(
            &app.router,
            json!({"username": username, "password": password}),
        )
        .await?;
        assert_seed_error(&refused, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(refused.body["error"], "Invalid credentials");
    }
    Ok(())
}

#[tokio::test]
async fn seed_store_lifecycle_replayed_as_its_clients_send_it() -> Result<()> {
    let app = app().await?;
    let token = user_token(
        &app,
        "seeduser",
        Quota {
            max_stores: 3,
            max_storage_gib: 20,
        },
    )
    .await?;

    let me = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "seeduser");
    assert_eq!(me.body["max_stores"], 3);
    assert_eq!(me.body["max_storage"], 20);
    assert_eq!(me.body["current_stores"], 0);
    assert_eq!(me.body["current_storage"], 0);

    // The seed README's request, byte for byte.
    let readme = Request::post("/api/stores")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{
    "sample_products": "T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans",
    "storage_size_gi": 2
  }"#,
        ))?;
    let first = send_raw(&app.router, readme).await?;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_fields(&first.body, &CREATED_FIELDS);
    let id = first.body["id"].as_str().expect("id").to_owned();
    assert_eq!(first.body["namespace"], format!("store-{id}"));
    assert_eq!(first.body["owner"], "seeduser");
    assert_eq!(first.body["admin_user"], "admin");
    assert_eq!(first.body["status"], "initialized");
    let generated = first.body["admin_password"].as_str().expect("a password");
    assert!(generated.len() >= 12, "generated password {generated:?}");

    // The seed's dashboard sends the size as typed (a string) and a blank password.
    let second = create_store(
        &app.router,
        &token,
        json!({"sample_products": "Mug|4.50|Ceramic", "storage_size_gi": "3", "admin_password": ""}),
    )
    .await?;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    assert_eq!(second.body["storage_gi"], 3);
    let blank_generated = second.body["admin_password"].as_str().expect("a password");
    assert!(blank_generated.len() >= 12 && blank_generated != generated);

    // No products: the seed's two samples.
    let third = create_store(&app.router, &token, json!({})).await?;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.text);
    let third_id = third.body["id"].as_str().expect("id");
    let detail = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{third_id}"),
        Some(&token),
        None,
    )
    .await?;
    let names: Vec<&str> = detail.body["products"]
        .as_array()
        .expect("products")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["T-Shirt", "Jeans"]);
    assert_eq!(third.body["storage_gi"], 2);

    // Usage counts MySQL's 1 GiB per store: (2 + 1) + (3 + 1) + (2 + 1).
    let me = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(me.body["current_stores"], 3);
    assert_eq!(me.body["current_storage"], 10);

    let list = send(&app.router, Method::GET, "/api/stores", Some(&token), None).await?;
    assert_eq!(list.status, StatusCode::OK);
    let stores = list.body["stores"].as_array().expect("stores");
    assert_eq!(stores.len(), 3);
    for store in stores {
        assert_fields(store, &LISTED_FIELDS);
    }
    assert_eq!(stores[1]["storage_gi"], 3);
    assert!(
        !list.text.to_lowercase().contains("password")
            && !list.text.contains(generated)
            && !list.text.contains(blank_generated),
        "a password in the list: {}",
        list.text
    );

    // Over quota: the message is a string the dashboard can show.
    let over = create_store(&app.router, &token, json!({})).await?;
    assert_seed_error(&over, StatusCode::FORBIDDEN, "quota_exceeded");
    assert!(over.message().contains("store limit"), "{}", over.text);

    let deleted = send(
        &app.router,
        Method::DELETE,
        &format!("/api/stores/{id}"),
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["success"], true);
    Ok(())
}

// The seed knows no suspended stores; its clients list them (the status is text they show
// as it is), count them against the quota, and delete them, as any other.
#[tokio::test]
async fn seed_clients_list_count_and_delete_a_suspended_store_like_any_other() -> Result<()> {
    use storefactory_core::port::StoreRepository as _;
    use storefactory_core::spec::StoreId;
    use storefactory_core::store::StoreStatus;
    let app = app().await?;
    let token = user_token(&app, "sam", Quota::default()).await?;
    let created = create_store(&app.router, &token, json!({"storage_size_gi": 2})).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let store_id = StoreId::new(id.clone())?;
    for status in [
        StoreStatus::Provisioning,
        StoreStatus::Ready,
        StoreStatus::Suspending,
        StoreStatus::Suspended,
    ] {
        app.db.set_status(&store_id, status, None).await?;
    }
    let list = send(&app.router, Method::GET, "/api/stores", Some(&token), None).await?;
    let stores = list.body["stores"].as_array().expect("stores");
    assert_fields(&stores[0], &LISTED_FIELDS);
    assert_eq!(stores[0]["status"], "suspended");
    let me = send(
        &app.router,
        Method::GET,
        "/api/users/me",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(
        me.body["current_stores"], 1,
        "a suspended store keeps its quota"
    );
    assert_eq!(me.body["current_storage"], 3);
    let deleted = send(
        &app.router,
        Method::DELETE,
        &format!("/api/stores/{id}"),
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.body["success"], true);
    assert_eq!(deleted.body["status"], "deleting");
    Ok(())
}

#[tokio::test]
async fn seed_clients_get_every_error_as_a_string_with_a_code() -> Result<()> {
    let app = app_with(config(), false).await?;
    let admin = admin_token(&app).await?;

    let missing = send(&app.router, Method::GET, "/api/stores", None, None).await?;
    assert_seed_error(&missing, StatusCode::UNAUTHORIZED, "unauthorized");

    let bad_size = create_store(&app.router, &admin, json!({"storage_size_gi": "two"})).await?;
    assert_seed_error(&bad_size, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    assert_eq!(bad_size.body["field"], "storage_size_gi");

    let bad_line = create_store(
        &app.router,
        &admin,
        json!({"sample_products": "Hat|ten euros|Warm"}),
    )
    .await?;
    assert_seed_error(&bad_line, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    assert_eq!(bad_line.body["field"], "sample_products line 1");

    let malformed = Request::post("/api/stores")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"storage_size_gi\": "))?;
    let malformed = send_raw(&app.router, malformed).await?;
    assert_seed_error(&malformed, StatusCode::BAD_REQUEST, "invalid_json");

    let unknown = send(
        &app.router,
        Method::DELETE,
        "/api/stores/nosuchstore",
        Some(&admin),
        None,
    )
    .await?;
    assert_seed_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    let no_cluster = create_store(&app.router, &admin, json!({})).await?;
    assert_seed_error(
        &no_cluster,
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
    );
    Ok(())
}

#[tokio::test]
async fn store_lists_come_in_bounded_pages_with_a_cursor() -> Result<()> {
    let app = app().await?;
    let token = user_token(
        &app,
        "pager",
        Quota {
            max_stores: 10,
            max_storage_gib: 100,
        },
    )
    .await?;
    let mut created = Vec::new();
    for _ in 0..5 {
        let reply = create_store(&app.router, &token, json!({"storage_size_gi": 1})).await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        created.push(reply.body["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/api/stores?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = send(&app.router, Method::GET, &path, Some(&token), None).await?;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let stores = page.body["stores"].as_array().expect("stores");
        assert!(stores.len() <= 2);
        seen.extend(
            stores
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/stores?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);

    // Newest first, for the dashboard.
    let newest = send(
        &app.router,
        Method::GET,
        "/api/stores?order=newest&limit=2",
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(newest.body["stores"][0]["id"], created[4].as_str());
    assert_eq!(newest.body["stores"][1]["id"], created[3].as_str());
    let cursor = newest.body["next_cursor"].as_str().expect("more");
    let older = send(
        &app.router,
        Method::GET,
        &format!("/api/stores?order=newest&limit=2&cursor={cursor}"),
        Some(&token),
        None,
    )
    .await?;
    assert_eq!(older.body["stores"][0]["id"], created[2].as_str());

    // Without a limit, everything (what the seed's clients ask for).
    let all = send(&app.router, Method::GET, "/api/stores", Some(&token), None).await?;
    assert_eq!(all.body["stores"].as_array().map(Vec::len), Some(5));
    assert!(all.body["next_cursor"].is_null());

    for bad in [
        "/api/stores?limit=0",
        "/api/stores?limit=501",
        "/api/stores?cursor=abc",
        "/api/stores?cursor=-1",
        "/api/stores?order=random",
    ] {
        let reply = send(&app.router, Method::GET, bad, Some(&token), None).await?;
        assert_seed_error(&reply, StatusCode::BAD_REQUEST, "invalid_query");
    }
    Ok(())
}

#[test]
fn the_validator_refuses_what_the_document_does_not_say() {
    // The checks above are only as good as the validator: it must fail on drift.
    let doc = openapi::document();
    let schema = openapi::response_schema(&doc, "GET", "/api/users/me", 200);
    let mut user = json!({
        "username": "a", "role": "user", "created_at": 1,
        "quota": {"max_stores": 1, "max_storage_gib": 2},
        "usage": {"stores": 0, "storage_gib": 0},
        "max_stores": 1, "max_storage": 2, "current_stores": 0, "current_storage": 0
    });
    assert_eq!(
        openapi::problems(&doc, &schema, &user),
        Vec::<String>::new()
    );
    user["password_hash"] = json!("x");
    assert!(
        !openapi::problems(&doc, &schema, &user).is_empty(),
        "undocumented field"
    );
    user.as_object_mut()
        .expect("object")
        .remove("password_hash");
    user["max_stores"] = json!("1");
    assert!(
        !openapi::problems(&doc, &schema, &user).is_empty(),
        "wrong type"
    );
    user.as_object_mut().expect("object").remove("max_stores");
    assert!(
        !openapi::problems(&doc, &schema, &user).is_empty(),
        "missing field"
    );

    let error = openapi::response_schema(&doc, "POST", "/api/stores", 403);
    let nested = json!({"error": {"code": "quota_exceeded", "message": "m"}});
    assert!(
        !openapi::problems(&doc, &error, &nested).is_empty(),
        "an object as error"
    );
    let flat = json!({"error": "m", "code": "quota_exceeded"});
    assert!(openapi::problems(&doc, &error, &flat).is_empty());
    let created = openapi::response_schema(&doc, "POST", "/api/stores", 201);
    assert!(
        openapi::problems(&doc, &created, &json!({"id": "x"}))
            .iter()
            .any(|p| p.contains("admin_password")),
        "allOf parts are checked"
    );
}
