//! `storefactory`: run the platform and manage stores, users and blueprints.

use clap::Parser;

/// Storefactory provisions isolated WooCommerce stores on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "storefactory", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
