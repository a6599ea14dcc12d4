//! Custom domains through the API: `GET/POST /api/stores/{id}/domains` and
//! `DELETE /api/stores/{id}/domains/{domain}` (through the router; the Provisioner has the
//! shared local control plane, its reconciler is not started, so records stay as the API
//! leaves them — `storefactory-core/tests/domains.rs` follows the Ingress), and the paused
//! page answering for a suspended store's custom domain over real HTTP.

mod common;

use anyhow::Result;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use storefactory_core::port::{Quota, StoreRepository};
use storefactory_core::spec::StoreId;
use storefactory_core::store::StoreStatus;

async fn ready_store(app: &TestApp, token: &str) -> Result<(String, StoreId)> {
    let reply = create_store(&app.router, token, json!({ "storage_size_gi": 1 })).await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let store_id = StoreId::new(id.clone())?;
    for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
        app.db.set_status(&store_id, status, None).await?;
    }
    Ok((id, store_id))
}

async fn add(app: &TestApp, token: &str, id: &str, body: Value) -> Result<Reply> {
    send(
        &app.router,
        Method::POST,
        &format!("/api/stores/{id}/domains"),
        Some(token),
        Some(body),
    )
    .await
}

async fn remove(app: &TestApp, token: &str, id: &str, domain: &str) -> Result<Reply> {
    send(
        &app.router,
        Method::DELETE,
        &format!("/api/stores/{id}/domains/{domain}"),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn domains_are_added_listed_and_removed_by_owner_or_admin_and_unique() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let quota = Quota {
        max_stores: 3,
        max_storage_gib: 50,
    };
    let erin = user_token(&app, "erin", quota).await?;
    let frank = user_token(&app, "frank", quota).await?;
    let (shop, shop_id) = ready_store(&app, &erin).await?;
    let (other, other_id) = ready_store(&app, &frank).await?;
    let shop_host = format!("store-{shop}.storefactory.local");
    let other_host = format!("store-{other}.storefactory.local");

    let listed = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{shop}/domains"),
        Some(&erin),
        None,
    )
    .await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(
        listed.body,
        json!({ "store_id": shop, "host": shop_host, "domains": [] })
    );

    // Added, normalised; the store stays ready. Again: 200, nothing new.
    let reply = add(&app, &erin, &shop, json!({ "domain": "Shop.Example.COM." })).await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["domains"], json!(["shop.example.com"]));
    assert_eq!(reply.body["status"], "ready");
    assert_eq!(reply.body["url"], format!("http://{shop_host}/"));
    let reply = add(&app, &erin, &shop, json!({ "domain": "shop.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let shown = send(
        &app.router,
        Method::GET,
        &format!("/api/stores/{shop}"),
        Some(&erin),
        None,
    )
    .await?;
    assert_eq!(shown.body["domains"], json!(["shop.example.com"]));
    let listing = send(&app.router, Method::GET, "/api/stores", Some(&erin), None).await?;
    assert_eq!(
        listing.body["stores"][0]["domains"],
        json!(["shop.example.com"])
    );

    // Another store cannot have it, nor the first store's host: 409, nothing changes.
    let before = app.db.get_store(&other_id).await?.expect("store");
    for domain in ["shop.example.com", "SHOP.example.com.", shop_host.as_str()] {
        let reply = add(&app, &frank, &other, json!({ "domain": domain })).await?;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{domain}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "domain_taken");
        assert!(
            reply.message().contains("is already used by another store"),
            "{}",
            reply.text
        );
        if domain != shop_host {
            assert!(!reply.message().contains(&shop), "the holder is not named");
        }
    }
    // Its own host is not a custom domain of its own.
    let reply = add(&app, &frank, &other, json!({ "domain": other_host })).await?;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert!(reply.message().contains("own host"), "{}", reply.text);
    // Bad names: 422 naming the field, saying why.
    for (domain, why) in [
        ("*.example.com", "wildcards"),
        ("10.0.0.1", "IP address"),
        ("localhost", "two labels"),
        ("shop_1.example.com", "label"),
        ("", "empty"),
        ("mine.storefactory.local", "platform's own domain"),
    ] {
        let reply = add(&app, &frank, &other, json!({ "domain": domain })).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{domain}: {}",
            reply.text
        );
        assert_eq!(reply.code(), "invalid_input");
        assert_eq!(reply.body["field"], "domain");
        assert!(reply.message().contains(why), "{domain}: {}", reply.text);
    }
    let reply = add(&app, &frank, &other, json!({ "host": "a.example.com" })).await?;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(app.db.get_store(&other_id).await?.expect("store"), before);

    // Someone else's store reads as missing; an admin may change it.
    let reply = add(&app, &frank, &shop, json!({ "domain": "f.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let reply = remove(&app, &frank, &shop, "shop.example.com").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let reply = add(&app, &admin, &other, json!({ "domain": "www.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    // At most ten.
    for i in 1..10 {
        let reply = add(
            &app,
            &erin,
            &shop,
            json!({ "domain": format!("s{i}.example.com") }),
        )
        .await?;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let reply = add(&app, &erin, &shop, json!({ "domain": "s10.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "domain_limit");

    // Removed: free for another store at once. Removing it again, or the store's host, is
    // refused.
    let reply = remove(&app, &erin, &shop, "Shop.example.com").await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        !reply.body["domains"]
            .as_array()
            .expect("domains")
            .contains(&json!("shop.example.com"))
    );
    assert_eq!(reply.body["domains"].as_array().map(Vec::len), Some(9));
    let reply = remove(&app, &erin, &shop, "shop.example.com").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert!(
        reply
            .message()
            .contains("has no custom domain shop.example.com"),
        "{}",
        reply.text
    );
    let reply = remove(&app, &erin, &shop, &shop_host).await?;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    let reply = add(
        &app,
        &frank,
        &other,
        json!({ "domain": "shop.example.com" }),
    )
    .await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        reply.body["domains"],
        json!(["www.example.com", "shop.example.com"])
    );

    // Only ready or suspended stores.
    app.db
        .set_status(&shop_id, StoreStatus::Suspending, None)
        .await?;
    let reply = add(&app, &erin, &shop, json!({ "domain": "late.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_state");
    assert!(
        reply.message().contains("only ready or suspended stores"),
        "{}",
        reply.text
    );

    // Each change is an event of the store and an audit entry naming the domain.
    let events = app.db.events(&other_id, 0).await?;
    let messages: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            storefactory_core::store::EventKind::Step { step, message } if step == "domain" => {
                Some(message.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        [
            "domain www.example.com added",
            "domain shop.example.com added"
        ]
    );
    let audit = app
        .db
        .audit_log(&storefactory_sql::AuditFilter {
            target: Some(shop.clone()),
            ..Default::default()
        })
        .await?;
    assert!(
        audit.iter().any(|e| e.action == "store.domain.remove"
            && e.detail.as_deref() == Some("shop.example.com")),
        "{audit:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_stores_custom_domain_answers_that_it_is_paused() -> Result<()> {
    use storefactory_core::spec::StoreSpec;
    use storefactory_core::store::StoreRecord;
    let dir = tempfile::tempdir()?;
    let mut config = config();
    config.listen = "127.0.0.1:0".parse()?;
    config.database = dir.path().join("paused.db");
    config.kubeconfig = Some(dir.path().join("no-kubeconfig"));
    let server = storefactory_http::Server::bind(config).await?;
    let addr = server.local_addr();
    let db = server.state().db().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let store = |id: &str, domains: &[&str]| {
        let id = StoreId::new(id).expect("id");
        let host = format!("store-{id}.storefactory.local");
        let mut spec = StoreSpec::new(id, "admin", host);
        spec.ingress.domains = domains.iter().map(|d| (*d).to_owned()).collect();
        StoreRecord::new(spec, "Shop", "woocommerce")
    };
    let paused = store("paused2", &["shop.example.com", "store-x.example.com"]);
    let open = store("open2", &["open.example.com"]);
    for record in [&paused, &open] {
        db.insert_store(record).await?;
        for status in [StoreStatus::Provisioning, StoreStatus::Ready] {
            db.set_status(&record.id, status, None).await?;
        }
    }
    for status in [StoreStatus::Suspending, StoreStatus::Suspended] {
        db.set_status(&paused.id, status, None).await?;
    }
    for host in [
        "shop.example.com",
        "SHOP.example.com.:443",
        "store-x.example.com",
        "store-paused2.storefactory.local",
    ] {
        let (status, headers, body) = raw_get(addr, host, "/").await?;
        assert!(status.contains(" 503 "), "{host}: {status}");
        assert!(headers.contains("retry-after: 300"), "{headers}");
        assert!(body.contains("This store is paused"), "{body}");
    }
    for host in ["open.example.com", "other.example.com", "127.0.0.1"] {
        let (status, _, body) = raw_get(addr, host, "/health").await?;
        assert!(status.contains(" 200 "), "{host}: {status}");
        assert!(body.contains("healthy"), "{body}");
    }
    let _ = stop.send(());
    running.await??;
    Ok(())
}

// A domain added through the server to a suspended store answers with the paused page at
// once, though the server had read the custom domains just before.
#[tokio::test]
async fn a_domain_added_to_a_suspended_store_is_paused_at_once() -> Result<()> {
    let app = app().await?;
    let admin = admin_token(&app).await?;
    let (id, store_id) = ready_store(&app, &admin).await?;
    for status in [StoreStatus::Suspending, StoreStatus::Suspended] {
        app.db.set_status(&store_id, status, None).await?;
    }
    let get = |host: &str| {
        axum::http::Request::builder()
            .uri("/")
            .header(axum::http::header::HOST, host)
            .body(axum::body::Body::empty())
            .expect("request")
    };
    // Not a domain of any store yet: the dashboard, as for any host.
    let before = send_raw(&app.router, get("late.example.com")).await?;
    assert_eq!(before.status, StatusCode::OK);
    assert!(!before.text.contains("This store is paused"));
    let reply = add(&app, &admin, &id, json!({ "domain": "late.example.com" })).await?;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["status"], "suspended");
    let after = send_raw(&app.router, get("late.example.com")).await?;
    assert_eq!(after.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        after.text.contains("This store is paused"),
        "{}",
        after.text
    );
    // Removed: the host is the platform's again.
    let reply = remove(&app, &admin, &id, "late.example.com").await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let removed = send_raw(&app.router, get("late.example.com")).await?;
    assert_eq!(removed.status, StatusCode::OK);
    Ok(())
}

/// Sends one HTTP/1.1 request with `host` to the server at `addr`; the status line, the
/// headers (lowercase) and the body.
async fn raw_get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> Result<(String, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((
        status.to_owned(),
        headers.to_ascii_lowercase(),
        body.to_owned(),
    ))
}
