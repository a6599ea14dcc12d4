//! Renders the Kubernetes manifests of a store from a JSON spec file and prints them as
//! multi-document YAML, for review or GitOps.
//!
//! ```sh
//! cargo run -q --example render_store -- examples/spec.json
//! ```
//!
//! The spec accepts `id`, `host`, `storage_size_gi` (the WordPress volume, GiB), `products`
//! (a list of `{name, price, description}`) and optionally `owner` and `site_title`. Secrets
//! are printed as placeholders, never as real passwords.

use std::process::ExitCode;

use serde::Deserialize;
use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT, SecretValues};
use storefactory_core::product::Product;
use storefactory_core::spec::{Quantity, StoreId, StoreSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    id: StoreId,
    host: String,
    #[serde(default)]
    storage_size_gi: Option<u64>,
    #[serde(default)]
    products: Vec<Product>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    site_title: Option<String>,
}

fn run(path: &str) -> Result<String, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let file: SpecFile =
        serde_json::from_str(&text).map_err(|e| format!("{path} is not a valid spec: {e}"))?;
    let mut spec = StoreSpec::new(
        file.id,
        file.owner.unwrap_or_else(|| "example".to_owned()),
        file.host,
    );
    spec.products = file.products;
    if let Some(title) = file.site_title {
        spec.site_title = title;
    }
    if let Some(gib) = file.storage_size_gi {
        spec.wordpress.storage = Quantity::gib(gib);
        spec.fit_quota_to_volumes();
    }
    // Generated passwords come out as `REPLACE_ME_...`: the engine creates them once per store.
    let manifests = BlueprintRegistry::builtin()?.render(
        DEFAULT_BLUEPRINT,
        &spec,
        SecretValues::Placeholders,
    )?;
    let mut out = String::new();
    for manifest in manifests {
        out.push_str("---\n");
        out.push_str(&storefactory_core::yaml::to_string(&manifest.to_value())?);
    }
    Ok(out)
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: render_store SPEC.json");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(1)
        }
    }
}
