//! Changes to a ready store: what may change, and the spec a change turns a store's spec
//! into, validated with the rules of creation.
//!
//! A change is a new desired spec. [`crate::provisioner::Provisioner::change`] records it and
//! the reconciler applies and observes it like provisioning (the store is `updating`, then
//! `ready` again, or `failed`).

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::product::Product;
use crate::spec::{Currency, MAX_STORAGE_GIB, Quantity, Resources, StoreSpec};

/// What to change in a store; every field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreChange {
    /// New size of the WordPress volume, in GiB. Volumes only grow: a size below the
    /// current one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gib: Option<u64>,
    /// New resources of the WordPress container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wordpress_resources: Option<Resources>,
    /// New resources of the MySQL container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_resources: Option<Resources>,
    /// The products the store is seeded with from now on. Seeding runs again: products are
    /// matched by SKU (their position in the list): existing ones are updated, new ones
    /// created, none is duplicated, and those dropped from the list are hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<Vec<Product>>,
    /// New title of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_title: Option<String>,
    /// New shop currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
}

impl StoreChange {
    /// Whether the change names nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == StoreChange::default()
    }

    /// The spec `current` becomes with this change, checked with the same rules (and
    /// messages) as a new store's, plus the rules of changes: a volume never shrinks.
    /// The namespace's storage quota grows with the volume
    /// ([`StoreSpec::fit_quota_to_volumes`]).
    pub fn apply_to(&self, current: &StoreSpec) -> Result<StoreSpec, ValidationError> {
        if self.is_empty() {
            return Err(ValidationError::new(
                "change",
                "nothing to change: give at least one of storage_gib, wordpress_resources, \
                 mysql_resources, products, site_title, currency",
            ));
        }
        let mut spec = current.clone();
        if let Some(gib) = self.storage_gib {
            if !(1..=MAX_STORAGE_GIB).contains(&gib) {
                return Err(ValidationError::new(
                    "storage_gib",
                    format!("must be a whole number of GiB between 1 and {MAX_STORAGE_GIB}"),
                ));
            }
            let wanted = Quantity::gib(gib);
            let now = &current.wordpress.storage;
            if wanted.value() < now.value() {
                return Err(ValidationError::new(
                    "storage_gib",
                    format!(
                        "{gib} GiB is below the current size of the WordPress volume ({now}); \
                         volumes can only grow"
                    ),
                ));
            }
            // The same size written another way (2048Mi) is no change.
            if wanted.value() > now.value() {
                spec.wordpress.storage = wanted;
                spec.fit_quota_to_volumes();
            }
        }
        if let Some(resources) = &self.wordpress_resources {
            spec.wordpress.resources = resources.clone();
        }
        if let Some(resources) = &self.mysql_resources {
            spec.mysql.resources = resources.clone();
        }
        if let Some(products) = &self.products {
            spec.products = products.clone();
        }
        if let Some(title) = &self.site_title {
            spec.site_title = title.trim().to_owned();
        }
        if let Some(currency) = &self.currency {
            spec.currency = currency.clone();
        }
        spec.validate()?;
        Ok(spec)
    }

    /// What changes from `before` to `after`, in words for a store's events, e.g.
    /// `WordPress storage 2Gi -> 5Gi`. Empty when nothing does.
    pub fn describe(before: &StoreSpec, after: &StoreSpec) -> Vec<String> {
        let mut changes = Vec::new();
        if before.wordpress.storage != after.wordpress.storage {
            changes.push(format!(
                "WordPress storage {} -> {}",
                before.wordpress.storage, after.wordpress.storage
            ));
        }
        if before.wordpress.resources != after.wordpress.resources {
            changes.push("WordPress resources".to_owned());
        }
        if before.mysql.resources != after.mysql.resources {
            changes.push("MySQL resources".to_owned());
        }
        if before.products != after.products {
            let n = after.products.len();
            changes.push(format!(
                "products ({n} product{})",
                if n == 1 { "" } else { "s" }
            ));
        }
        if before.site_title != after.site_title {
            changes.push(format!("site title {:?}", after.site_title));
        }
        if before.currency != after.currency {
            changes.push(format!(
                "currency {} -> {}",
                before.currency.as_str(),
                after.currency.as_str()
            ));
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::parse_products;
    use crate::spec::StoreId;

    fn current() -> StoreSpec {
        let mut spec = StoreSpec::new(StoreId::new("ab12").unwrap(), "alice", "shop.example");
        spec.products = parse_products("T-Shirt|5.99|Cotton").unwrap();
        spec
    }

    #[test]
    fn a_bigger_volume_grows_the_namespace_quota_with_it() {
        let change = StoreChange {
            storage_gib: Some(20),
            ..StoreChange::default()
        };
        let spec = change.apply_to(&current()).unwrap();
        assert_eq!(spec.wordpress.storage.as_str(), "20Gi");
        assert!(
            spec.quota.storage.gib_ceil() >= 21,
            "{}",
            spec.quota.storage
        );
        assert_eq!(
            StoreChange::describe(&current(), &spec),
            ["WordPress storage 2Gi -> 20Gi"]
        );
    }

    #[test]
    fn a_smaller_volume_is_refused_naming_the_current_size() {
        let change = StoreChange {
            storage_gib: Some(1),
            ..StoreChange::default()
        };
        let error = change.apply_to(&current()).unwrap_err();
        assert_eq!(error.field, "storage_gib");
        assert!(
            error.message.contains("below the current size") && error.message.contains("2Gi"),
            "{error}"
        );
        let same = StoreChange {
            storage_gib: Some(2),
            ..StoreChange::default()
        };
        assert_eq!(same.apply_to(&current()).unwrap(), current());
    }

    #[test]
    fn changes_are_checked_with_the_rules_of_creation() {
        let empty_title = StoreChange {
            site_title: Some("  ".to_owned()),
            ..StoreChange::default()
        };
        assert_eq!(
            empty_title.apply_to(&current()).unwrap_err().field,
            "site_title"
        );
        let upside_down = StoreChange {
            wordpress_resources: Some(
                serde_json::from_value(serde_json::json!({
                    "cpu_request": "2", "memory_request": "256Mi",
                    "cpu_limit": "1", "memory_limit": "512Mi"
                }))
                .unwrap(),
            ),
            ..StoreChange::default()
        };
        assert_eq!(
            upside_down.apply_to(&current()).unwrap_err().field,
            "wordpress.resources.cpu_request"
        );
        let nothing = StoreChange::default().apply_to(&current()).unwrap_err();
        assert!(nothing.message.contains("nothing to change"), "{nothing}");
        let unknown = serde_json::from_value::<StoreChange>(serde_json::json!({"color": "red"}));
        assert!(unknown.is_err(), "unknown fields are refused");
    }

    #[test]
    fn products_title_and_currency_are_described() {
        let change = StoreChange {
            products: Some(parse_products("Mug|3|Ceramic\nCap|4|Wool").unwrap()),
            site_title: Some("New Shop".to_owned()),
            currency: Some(Currency::new("EUR").unwrap()),
            ..StoreChange::default()
        };
        let spec = change.apply_to(&current()).unwrap();
        assert_eq!(
            StoreChange::describe(&current(), &spec),
            [
                "products (2 products)",
                "site title \"New Shop\"",
                "currency USD -> EUR"
            ]
        );
    }
}
