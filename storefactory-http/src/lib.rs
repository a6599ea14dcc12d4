//! The Storefactory HTTP API server (axum) and its dashboard.
