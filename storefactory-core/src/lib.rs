//! The engine of Storefactory: typed store specifications, blueprints that render them into
//! Kubernetes objects, and the Provisioner that takes a store to ready and back.
//!
//! ```no_run
//! use storefactory_core::blueprint::{BlueprintRegistry, SecretValues, DEFAULT_BLUEPRINT};
//! use storefactory_core::product::parse_products;
//! use storefactory_core::spec::{StoreId, StoreSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = StoreId::generate();
//! let mut spec = StoreSpec::new(id.clone(), "alice", format!("store-{id}.storefactory.local"));
//! spec.products = parse_products("T-Shirt|5.99|Cotton t-shirt\nJeans|12.99|Denim")?;
//!
//! let registry = BlueprintRegistry::builtin()?;
//! let objects = registry.render(DEFAULT_BLUEPRINT, &spec, SecretValues::Placeholders)?;
//! for object in &objects {
//!     println!("{}", object.describe());
//! }
//! # Ok(())
//! # }
//! ```

pub mod backup;
pub mod blueprint;
pub mod change;
pub mod error;
pub mod kube_config;
pub mod manifest;
pub mod memory;
pub mod port;
pub mod product;
pub mod provisioner;
pub mod request_counter;
pub mod seal;
pub mod spec;
pub mod store;
pub mod yaml;

pub use error::{Error, Result};
