//! Store specs and products from Python, with the rules and messages of the HTTP API.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString};
use storefactory_core::change::StoreChange;
use storefactory_core::product::{Product, parse_product_json, parse_products};
use storefactory_core::spec::{
    Currency, DEFAULT_SAMPLE_PRODUCTS, DEFAULT_STORAGE_GIB, MAX_STORAGE_GIB, Quantity, Resources,
    StoreId, StoreSpec, TlsSpec,
};

use crate::convert::{from_python, to_python};
use crate::error::{invalid, to_py};

/// The domain stores are published under when neither `host` nor `domain` is given.
const DEFAULT_DOMAIN: &str = "storefactory.local";

/// Products from `Name|Price|Description` lines, a JSON list in a string, or a list of
/// dicts; the default sample products for `None`.
fn products_from(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Product>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return parse_products(DEFAULT_SAMPLE_PRODUCTS).map_err(to_py);
    };
    if let Ok(text) = value.cast::<PyString>() {
        return parse_products(&text.extract::<String>()?).map_err(to_py);
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<pyo3::types::PyTuple>() {
        let json = from_python(value, "sample_products")?;
        return parse_product_json(&json.to_string()).map_err(to_py);
    }
    Err(invalid(
        "sample_products",
        "expected Name|Price|Description lines or a list of products",
    ))
}

/// A WordPress volume size in whole GiB, as the API takes it.
fn storage_from(value: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(DEFAULT_STORAGE_GIB);
    };
    let size = (value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>())
        .then(|| value.extract::<u64>().ok())
        .flatten();
    match size {
        Some(size) if (1..=MAX_STORAGE_GIB).contains(&size) => Ok(size),
        _ => Err(invalid(
            "storage_size_gi",
            format!("must be a whole number of GiB between 1 and {MAX_STORAGE_GIB}"),
        )),
    }
}

/// A change from the keyword arguments of `Provisioner.change`, with the names, rules and
/// messages of `PATCH /api/stores/{id}`; `None` leaves a field as it is.
pub fn change_from(
    storage_size_gi: Option<&Bound<'_, PyAny>>,
    sample_products: Option<&Bound<'_, PyAny>>,
    title: Option<String>,
    currency: Option<&str>,
    wordpress_resources: Option<&Bound<'_, PyAny>>,
    mysql_resources: Option<&Bound<'_, PyAny>>,
) -> PyResult<StoreChange> {
    let given = |v: Option<&Bound<'_, PyAny>>| v.filter(|v| !v.is_none()).is_some();
    let resources =
        |value: Option<&Bound<'_, PyAny>>, field: &str| -> PyResult<Option<Resources>> {
            match value.filter(|v| !v.is_none()) {
                None => Ok(None),
                Some(value) => {
                    let json = from_python(value, field)?;
                    serde_json::from_value(json)
                        .map(Some)
                        .map_err(|e| invalid(field, e.to_string()))
                }
            }
        };
    Ok(StoreChange {
        storage_gib: if given(storage_size_gi) {
            Some(storage_from(storage_size_gi)?)
        } else {
            None
        },
        products: if given(sample_products) {
            Some(products_from(sample_products)?)
        } else {
            None
        },
        site_title: title,
        currency: currency
            .map(|c| Currency::new(c.trim().to_ascii_uppercase()))
            .transpose()
            .map_err(to_py)?,
        wordpress_resources: resources(wordpress_resources, "wordpress_resources")?,
        mysql_resources: resources(mysql_resources, "mysql_resources")?,
    })
}

/// What to build for one store: owner, products, storage, publication. Validated when
/// made; immutable.
///
/// `StoreSpec(owner, ...)` takes the HTTP API's inputs (`sample_products`,
/// `storage_size_gi`) with its defaults (two sample products, 2 GiB) and its messages;
/// `StoreSpec.from_dict(d)` takes a whole spec as `to_dict()` returns it.
#[pyclass(name = "StoreSpec", module = "storefactory", frozen)]
#[derive(Clone)]
pub struct PyStoreSpec {
    pub spec: StoreSpec,
}

#[pymethods]
impl PyStoreSpec {
    #[new]
    #[pyo3(signature = (
        owner, *, sample_products=None, storage_size_gi=None, title=None, currency=None,
        id=None, domain=None, host=None, storage_class=None, ingress_class=None,
        tls_cluster_issuer=None, params=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        owner: &str,
        sample_products: Option<&Bound<'_, PyAny>>,
        storage_size_gi: Option<&Bound<'_, PyAny>>,
        title: Option<&str>,
        currency: Option<&str>,
        id: Option<&str>,
        domain: Option<&str>,
        host: Option<&str>,
        storage_class: Option<String>,
        ingress_class: Option<String>,
        tls_cluster_issuer: Option<String>,
        params: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let id = match id {
            Some(id) => StoreId::new(id).map_err(to_py)?,
            None => StoreId::generate(),
        };
        let host = match host {
            Some(host) => host.trim().to_ascii_lowercase(),
            None => format!(
                "{}.{}",
                id.namespace(),
                domain
                    .unwrap_or(DEFAULT_DOMAIN)
                    .trim()
                    .trim_start_matches('.')
                    .to_ascii_lowercase()
            ),
        };
        let mut spec = StoreSpec::new(id, owner, host);
        spec.products = products_from(sample_products)?;
        spec.wordpress.storage = Quantity::gib(storage_from(storage_size_gi)?);
        spec.fit_quota_to_volumes();
        if let Some(title) = title.map(str::trim).filter(|t| !t.is_empty()) {
            spec.site_title = title.to_owned();
        }
        if let Some(currency) = currency {
            spec.currency = Currency::new(currency.trim().to_ascii_uppercase()).map_err(to_py)?;
        }
        spec.storage_class = storage_class.filter(|s| !s.is_empty());
        spec.ingress.class = ingress_class.filter(|s| !s.is_empty());
        spec.ingress.tls = tls_cluster_issuer
            .filter(|s| !s.is_empty())
            .map(TlsSpec::ClusterIssuer);
        spec.params = params.unwrap_or_default();
        spec.validate().map_err(to_py)?;
        Ok(PyStoreSpec { spec })
    }

    /// A spec from a dict of every field, as `to_dict()` returns (unknown keys are errors).
    #[staticmethod]
    fn from_dict(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        let json = from_python(value, "spec")?;
        let spec: StoreSpec =
            serde_json::from_value(json).map_err(|e| invalid("spec", e.to_string()))?;
        spec.validate().map_err(to_py)?;
        Ok(PyStoreSpec { spec })
    }

    /// Every field, as a dict of plain values.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(&self.spec).map_err(|e| invalid("spec", e.to_string()))?;
        to_python(py, &value)
    }

    /// The store id; its namespace is `store-<id>`.
    #[getter]
    fn id(&self) -> &str {
        self.spec.id.as_str()
    }

    /// Username of the owner.
    #[getter]
    fn owner(&self) -> &str {
        &self.spec.owner
    }

    /// The store's Kubernetes namespace.
    #[getter]
    fn namespace(&self) -> String {
        self.spec.namespace()
    }

    /// The host the store is published at.
    #[getter]
    fn host(&self) -> &str {
        &self.spec.ingress.host
    }

    /// Its custom domains: more hosts it answers on, in the order they were added.
    #[getter]
    fn domains(&self) -> Vec<String> {
        self.spec.ingress.domains.clone()
    }

    /// The store's public URL.
    #[getter]
    fn url(&self) -> String {
        self.spec.url()
    }

    /// Title of the WordPress site.
    #[getter]
    fn title(&self) -> &str {
        &self.spec.site_title
    }

    /// Storage the store reserves in GiB (WordPress and MySQL volumes).
    #[getter]
    fn storage_gib(&self) -> u64 {
        self.spec.storage_gib()
    }

    /// The products the store is seeded with, as dicts (`name`, `price`, `description`).
    #[getter]
    fn products<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        products_to_python(py, &self.spec.products)
    }

    fn __repr__(&self) -> String {
        format!(
            "StoreSpec(id={:?}, owner={:?}, host={:?}, products={}, storage_gib={})",
            self.spec.id.as_str(),
            self.spec.owner,
            self.spec.ingress.host,
            self.spec.products.len(),
            self.spec.storage_gib()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyStoreSpec>()
            .is_ok_and(|other| other.get().spec == self.spec)
    }
}

fn products_to_python<'py>(py: Python<'py>, products: &[Product]) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(products).map_err(|e| invalid("products", e.to_string()))?;
    to_python(py, &value)
}

/// Parses products as the API does: `Name|Price|Description` lines (blank lines and `#`
/// comments skipped) or a JSON list; returns them as dicts. Raises `ValidationError` naming
/// the line or item at fault.
#[pyfunction(name = "parse_products")]
pub fn parse_products_text<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    products_to_python(py, &parse_products(text).map_err(to_py)?)
}

/// Checks a list of product dicts (`name`, `price`, optional `description`) as the API
/// does, and returns them normalised (prices as decimal strings).
#[pyfunction]
pub fn validate_products<'py>(
    py: Python<'py>,
    products: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    products_to_python(py, &products_from(Some(products))?)
}
