//! Python bindings for Storefactory: the `storefactory` module.
//!
//! A thin wrapper over the library, one module per concern: `spec` (store specs and
//! products), `blueprints` (listing and rendering), `database` (users and quotas),
//! `provisioner` (stores on a cluster and the background reconciler), `records` (what those
//! answer), `webhooks` (webhooks and their delivery logs), `error` (the exception hierarchy), `runtime` (the one tokio runtime, blocking
//! and asyncio waits) and `convert` (JSON values to and from Python objects).

mod blueprints;
mod convert;
mod database;
mod error;
mod provisioner;
mod records;
mod runtime;
mod spec;
mod webhooks;

use pyo3::prelude::*;

/// Provision WooCommerce stores on Kubernetes: specs, blueprints, users and quotas, and a
/// Provisioner with blocking and asyncio APIs.
#[pymodule]
fn storefactory(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DEFAULT_BLUEPRINT",
        storefactory_core::blueprint::DEFAULT_BLUEPRINT,
    )?;
    error::register(m)?;
    m.add_class::<spec::PyStoreSpec>()?;
    m.add_function(wrap_pyfunction!(spec::parse_products_text, m)?)?;
    m.add_function(wrap_pyfunction!(spec::validate_products, m)?)?;
    m.add_class::<blueprints::PyBlueprints>()?;
    m.add_class::<database::PyDatabase>()?;
    m.add_class::<database::PyUser>()?;
    m.add_class::<provisioner::PyProvisioner>()?;
    m.add_class::<provisioner::PyEventStream>()?;
    m.add_class::<records::PyStore>()?;
    m.add_class::<records::PyEvent>()?;
    m.add_class::<records::PyCredentials>()?;
    m.add_class::<records::PyBackup>()?;
    m.add_class::<records::PyRestore>()?;
    m.add_class::<webhooks::PyWebhook>()?;
    m.add_class::<webhooks::PyWebhookDelivery>()?;
    Ok(())
}
