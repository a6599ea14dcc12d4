//! Embedding Storefactory's blueprint engine: register a helper and a blueprint of your own,
//! then render a store with it. Prints the rendered objects as YAML.
//!
//! Run with `cargo run -p storefactory-core --example custom_blueprint`.

use storefactory_core::blueprint::{Blueprint, BlueprintRegistry, SecretValues};
use storefactory_core::manifest::Manifest;
use storefactory_core::spec::{StoreId, StoreSpec};

mod helpers {
    #![allow(missing_docs)]
    // Helpers that return a value have their output YAML-quoted like any other value.
    handlebars::handlebars_helper!(slug: |text: str| {
        text.to_lowercase().split_whitespace().collect::<Vec<_>>().join("-")
    });
}

const METADATA: &str = "\
description: A static maintenance page instead of a shop.
parameters:
  message:
    description: What visitors read.
    default: We will be back soon.
";

const TEMPLATE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: {{namespace}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: maintenance-page
  namespace: {{namespace}}
data:
  slug: {{slug store.site_title}}
  message: {{params.message}}
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = BlueprintRegistry::builtin()?;
    registry.register_helper("slug", Box::new(helpers::slug));
    registry.register_blueprint(Blueprint::from_files(
        "maintenance",
        [("blueprint.yaml", METADATA), ("00-page.yaml.hbs", TEMPLATE)],
    )?)?;

    let id = StoreId::new("demo")?;
    let mut spec = StoreSpec::new(id, "alice", "store-demo.storefactory.local");
    spec.site_title = "Alice's Summer Sale".to_owned();
    spec.params
        .insert("message".to_owned(), "Back on Monday: 10% off!".to_owned());

    let objects = registry.render("maintenance", &spec, SecretValues::Placeholders)?;
    let values: Vec<_> = objects.iter().map(Manifest::to_value).collect();
    print!("{}", storefactory_core::yaml::to_string(&values)?);
    Ok(())
}
