//! The Storefactory HTTP API server: axum over the core engine and the SQLite store, with
//! bearer-token authentication, per-user isolation, live provisioning progress (Server-Sent
//! Events) and an OpenAPI description.
//!
//! ```no_run
//! # async fn example() -> Result<(), storefactory_http::Error> {
//! let mut config = storefactory_http::ServerConfig::default();
//! config.listen = "0.0.0.0:8080".parse().expect("an address");
//! config.store_domain = "shops.example.com".to_owned();
//! storefactory_http::serve(config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! Tests and embedders can build the [`router`] over an [`AppState`] themselves.
//!
//! Every error answers `{"error": "...message...", "code": "..."}` ([`ApiError`]): the shape
//! the clients of the product Storefactory replaces expect, with a stable code beside it.

mod api_error;
pub mod archive_bucket;
pub mod auth;
mod config;
mod domains;
pub mod error;
mod memory;
pub mod metrics;
pub mod routes;
mod server;
mod state;
pub mod webhooks;

pub use api_error::{ApiError, ApiJson, ApiPath, ApiQuery};
pub use config::ServerConfig;
pub use error::{Error, Result};
pub use routes::{OPENAPI_JSON, router};
pub use server::{Server, serve};
pub use state::{AppState, TOKEN_KEY_SETTING};
pub use webhooks::WebhookConfig;
