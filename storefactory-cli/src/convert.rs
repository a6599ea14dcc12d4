//! Raw command-line values into validated core types.
//!
//! Everything here is pure: files are read by the caller, so these conversions are unit
//! tested without touching the disk.

use std::time::Duration;

use storefactory_core::error::ValidationError;
use storefactory_core::product::parse_products;
use storefactory_core::spec::{Currency, Quantity, StoreId, StoreSpec, TlsSpec};
use storefactory_sql::Role;

use crate::cli::SpecArgs;

/// Parses `90`, `90s`, `10m`, `1h` or `1h30m` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let error = || format!("{text:?} is not a duration (examples: 90 or 90s, 10m, 1h, 1h30m)");
    let text = text.trim();
    if text.is_empty() {
        return Err(error());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(error()),
        };
        let value: u64 = number.parse().map_err(|_| error())?;
        number.clear();
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(error)?;
    }
    if !number.is_empty() {
        return Err(error());
    }
    Ok(Duration::from_secs(total))
}

/// Checks a username with the database's rules.
pub fn parse_username(text: &str) -> Result<String, String> {
    storefactory_sql::validate_username(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

/// Parses `admin` or `user`.
pub fn parse_role(text: &str) -> Result<Role, String> {
    text.parse::<Role>().map_err(|e| e.to_string())
}

/// Parses a blueprint parameter `KEY=VALUE`.
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// Parses container resources `cpu=REQUEST/LIMIT,memory=REQUEST/LIMIT` (both given), each
/// a Kubernetes quantity.
pub fn parse_resources(text: &str) -> Result<storefactory_core::spec::Resources, String> {
    let mut cpu = None;
    let mut memory = None;
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not cpu=REQUEST/LIMIT or memory=REQUEST/LIMIT"))?;
        let (request, limit) = value
            .split_once('/')
            .ok_or_else(|| format!("{value:?} is not REQUEST/LIMIT"))?;
        let pair = (request.trim().to_owned(), limit.trim().to_owned());
        match key.trim() {
            "cpu" => cpu = Some(pair),
            "memory" => memory = Some(pair),
            other => return Err(format!("unknown resource {other:?} (cpu or memory)")),
        }
    }
    let (Some((cpu_request, cpu_limit)), Some((memory_request, memory_limit))) = (cpu, memory)
    else {
        return Err("give both cpu=REQUEST/LIMIT and memory=REQUEST/LIMIT".to_owned());
    };
    serde_json::from_value(serde_json::json!({
        "cpu_request": cpu_request, "memory_request": memory_request,
        "cpu_limit": cpu_limit, "memory_limit": memory_limit,
    }))
    .map_err(|e| e.to_string())
}

/// The store's host: `--host`, else `store-<id>.<domain>`.
pub fn store_host(id: &StoreId, domain: &str, host: Option<&str>) -> String {
    match host {
        Some(host) => host.trim().to_ascii_lowercase(),
        None => format!(
            "store-{id}.{}",
            domain.trim().trim_start_matches('.').to_ascii_lowercase()
        ),
    }
}

/// Builds and validates the store spec from the options; `products` is the text of
/// `--products-file`, already read.
pub fn build_spec(
    args: &SpecArgs,
    id: StoreId,
    products: Option<&str>,
) -> Result<StoreSpec, ValidationError> {
    let host = store_host(&id, &args.domain, args.host.as_deref());
    let mut spec = StoreSpec::new(id, args.owner.clone(), host);
    spec.site_title = args.title.clone();
    spec.currency = Currency::new(args.currency.trim().to_ascii_uppercase())?;
    if let Some(text) = products {
        spec.products = parse_products(text)?;
    }
    spec.wordpress.storage = Quantity::gib(args.storage);
    spec.mysql.storage = Quantity::gib(args.mysql_storage);
    // Grow the namespace quota for large stores rather than make people learn a second
    // storage option.
    spec.fit_quota_to_volumes();
    spec.storage_class = args.storage_class.clone().filter(|s| !s.is_empty());
    spec.ingress.class = args.ingress_class.clone().filter(|s| !s.is_empty());
    spec.ingress.tls = args
        .tls_cluster_issuer
        .clone()
        .filter(|s| !s.is_empty())
        .map(TlsSpec::ClusterIssuer);
    spec.params = args.params.iter().cloned().collect();
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, StoreCommand};

    fn spec_args(extra: &[&str]) -> SpecArgs {
        let mut args = vec!["storefactory", "store", "create"];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args).unwrap().command {
            Command::Store(StoreCommand::Create(create)) => create.spec,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn id() -> StoreId {
        StoreId::new("ab12").unwrap()
    }

    #[test]
    fn resources() {
        let parsed = parse_resources("cpu=200m/1,memory=256Mi/1Gi").unwrap();
        assert_eq!(parsed.cpu_request.as_str(), "200m");
        assert_eq!(parsed.memory_limit.as_str(), "1Gi");
        for bad in [
            "cpu=1/2",
            "cpu=1,memory=1Gi/2Gi",
            "disk=1/2,cpu=1/2",
            "cpu=x/1,memory=1/1",
        ] {
            assert!(parse_resources(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "m",
            "10x",
            "1.5m",
            "-3",
            "10m5",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn params_are_key_value() {
        assert_eq!(parse_param("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_param("a="), Ok(("a".into(), String::new())));
        assert!(parse_param("=b").is_err());
        assert!(parse_param("ab").is_err());
    }

    #[test]
    fn defaults_make_a_valid_spec_on_the_store_domain() {
        let spec = build_spec(&spec_args(&[]), id(), None).unwrap();
        assert_eq!(spec.owner, "admin");
        assert_eq!(spec.ingress.host, "store-ab12.storefactory.local");
        assert_eq!(spec.wordpress.storage.as_str(), "2Gi");
        assert_eq!(spec.storage_gib(), 3);
        assert!(spec.ingress.class.is_none() && spec.storage_class.is_none());
    }

    #[test]
    fn options_reach_the_spec() {
        let args = spec_args(&[
            "--owner",
            "alice",
            "--domain",
            "Shop.Example.com",
            "--storage",
            "5",
            "--ingress-class",
            "nginx",
            "--storage-class",
            "fast",
            "--currency",
            "eur",
            "--tls-cluster-issuer",
            "letsencrypt",
            "--param",
            "mysql_user=shop",
        ]);
        let spec = build_spec(&args, id(), Some("T-Shirt|5.99|Cotton\nJeans|12.99")).unwrap();
        assert_eq!(spec.owner, "alice");
        assert_eq!(spec.ingress.host, "store-ab12.shop.example.com");
        assert_eq!(spec.url(), "https://store-ab12.shop.example.com/");
        assert_eq!(spec.ingress.class.as_deref(), Some("nginx"));
        assert_eq!(spec.storage_class.as_deref(), Some("fast"));
        assert_eq!(spec.currency.as_str(), "EUR");
        assert_eq!(spec.products.len(), 2);
        assert_eq!(spec.products[1].price.as_str(), "12.99");
        assert_eq!(
            spec.params.get("mysql_user").map(String::as_str),
            Some("shop")
        );
        assert_eq!(spec.storage_gib(), 6);
    }

    #[test]
    fn large_stores_grow_the_namespace_quota() {
        let spec = build_spec(&spec_args(&["--storage", "40"]), id(), None).unwrap();
        assert_eq!(spec.quota.storage.gib_ceil(), 41);
    }

    #[test]
    fn json_products_are_accepted() {
        let json = r#"[{"name": "Mug", "price": 4.5, "description": "Coffee"}]"#;
        let spec = build_spec(&spec_args(&[]), id(), Some(json)).unwrap();
        assert_eq!(spec.products[0].name, "Mug");
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = build_spec(&spec_args(&[]), id(), Some("T-Shirt|cheap|x")).unwrap_err();
        assert!(err.field.contains("line 1"), "{err}");
        let err = build_spec(&spec_args(&["--host", "not a host"]), id(), None).unwrap_err();
        assert_eq!(err.field, "ingress.host");
        let err = build_spec(&spec_args(&["--currency", "euro"]), id(), None).unwrap_err();
        assert_eq!(err.field, "currency");
        let err =
            build_spec(&spec_args(&["--ingress-class", "Bad_Class"]), id(), None).unwrap_err();
        assert_eq!(err.field, "ingress.class");
    }
}
