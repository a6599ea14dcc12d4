//! Python bindings for Storefactory (the `storefactory` module).

use pyo3::prelude::*;

/// The `storefactory` Python module.
#[pymodule]
fn storefactory(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
