//! `storefactory blueprint ...`

use anyhow::Result;
use serde::Serialize;
use storefactory_core::blueprint::{BlueprintMeta, SecretInputs, SecretValues};
use storefactory_core::manifest::Manifest;
use storefactory_core::spec::StoreId;

use crate::Context;
use crate::cli::{BlueprintCommand, OutputFormat, RenderArgs};
use crate::output::{self, Table};
use crate::{convert, secret};

#[derive(Debug, Serialize)]
struct BlueprintView<'a> {
    name: &'a str,
    #[serde(flatten)]
    meta: &'a BlueprintMeta,
    templates: Vec<&'a str>,
}

/// Runs a `blueprint` command.
pub fn run(ctx: &Context, command: BlueprintCommand) -> Result<()> {
    match command {
        BlueprintCommand::List => {
            let registry = ctx.blueprints()?;
            let mut views = Vec::new();
            for name in registry.names() {
                let blueprint = registry.get(name)?;
                views.push(BlueprintView {
                    name,
                    meta: blueprint.meta(),
                    templates: blueprint.template_names().collect(),
                });
            }
            output::print(ctx.output(), &views, || {
                let mut table = Table::new(["NAME", "PARAMETERS", "DESCRIPTION"]);
                for v in &views {
                    let params: Vec<&str> = v.meta.parameters.keys().map(String::as_str).collect();
                    table.row([
                        v.name.to_owned(),
                        if params.is_empty() {
                            "-".to_owned()
                        } else {
                            params.join(",")
                        },
                        v.meta
                            .description
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]);
                }
                table.render()
            })
        }
        BlueprintCommand::Render(args) => render(ctx, *args),
    }
}

/// Moves a Secret's `data` to `stringData`, so that placeholders read as what they are.
fn readable_secret(manifest: Manifest) -> Manifest {
    match manifest {
        Manifest::Secret(mut secret) => {
            if let Some(data) = secret.data.take() {
                let strings = data
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                secret.string_data = Some(strings);
            }
            Manifest::Secret(secret)
        }
        other => other,
    }
}

fn render(ctx: &Context, args: RenderArgs) -> Result<()> {
    let products = match &args.spec.products_file {
        Some(path) => Some(secret::read_input(path)?),
        None => None,
    };
    let id = args.spec.id.clone().unwrap_or_else(StoreId::generate);
    let spec = convert::build_spec(&args.spec, id, products.as_deref())?;
    let registry = ctx.blueprints()?;
    let inputs = SecretInputs::none();
    let values = if args.generate_secrets {
        SecretValues::Generate(&inputs)
    } else {
        SecretValues::Placeholders
    };
    let manifests = registry.render(&args.spec.blueprint, &spec, values)?;
    let values: Vec<serde_json::Value> = manifests
        .into_iter()
        .map(|m| {
            if args.generate_secrets {
                m
            } else {
                readable_secret(m)
            }
            .to_value()
        })
        .collect();
    match ctx.output() {
        // A manifest stream is YAML by nature: `table` prints it as documents.
        OutputFormat::Table | OutputFormat::Yaml => {
            let mut text = String::new();
            for value in &values {
                text.push_str("---\n");
                text.push_str(
                    &storefactory_core::yaml::to_string(value)
                        .map_err(|e| anyhow::anyhow!("encoding YAML: {e}"))?,
                );
            }
            output::write_stdout(&text)
        }
        OutputFormat::Json => output::print(OutputFormat::Json, &values, String::new),
    }
}

#[cfg(test)]
mod tests {
    use storefactory_core::blueprint::{BlueprintRegistry, DEFAULT_BLUEPRINT};
    use storefactory_core::spec::StoreSpec;

    use super::*;

    #[test]
    fn placeholder_secrets_are_readable_and_never_generated() {
        let spec = StoreSpec::new(StoreId::new("ab12").unwrap(), "admin", "a.example");
        let registry = BlueprintRegistry::builtin().unwrap();
        let manifests = registry
            .render(DEFAULT_BLUEPRINT, &spec, SecretValues::Placeholders)
            .unwrap();
        let secrets: Vec<_> = manifests
            .into_iter()
            .filter(|m| m.kind() == "Secret")
            .map(|m| readable_secret(m).to_value())
            .collect();
        assert_eq!(secrets.len(), 2);
        for secret in &secrets {
            assert!(secret.get("data").is_none(), "{secret}");
            for (_, value) in secret["stringData"].as_object().unwrap() {
                let value = value.as_str().unwrap();
                assert!(
                    value.starts_with("REPLACE_ME_") || value == "admin",
                    "{value}"
                );
            }
        }
    }
}
