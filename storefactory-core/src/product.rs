//! Sample products a store is seeded with, and the two formats they are written in.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;
use crate::spec::MAX_PRODUCTS;

/// Longest product name.
pub const MAX_NAME_LEN: usize = 200;
/// Longest product description.
pub const MAX_DESCRIPTION_LEN: usize = 2000;

/// A non-negative decimal price with at most two decimals, kept as written (`5.99`, `1299`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Price(String);

impl Price {
    /// Validates a price.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let valid = !whole.is_empty()
            && whole.len() <= 12
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() <= 2
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && !(text.contains('.') && fraction.is_empty());
        if valid {
            Ok(Price(text.to_owned()))
        } else {
            Err(format!(
                "price {text:?} is not a non-negative decimal with at most two decimals (e.g. 5.99)"
            ))
        }
    }

    /// The price as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Price> for String {
    fn from(p: Price) -> String {
        p.0
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Accept `5.99` as well as `"5.99"`: JSON users write numbers.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(n) => n.to_string(),
        };
        Price::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A product to create in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Product name.
    pub name: String,
    /// Regular price in the store's currency.
    pub price: Price,
    /// Description; may be empty.
    #[serde(default)]
    pub description: String,
}

impl Product {
    /// Checks lengths and characters; `field` names the product in the error.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        check_field(&self.name, "name", MAX_NAME_LEN, false)
            .and_then(|()| check_field(&self.description, "description", MAX_DESCRIPTION_LEN, true))
            .map_err(|message| ValidationError::new(field, message))
    }
}

fn check_field(value: &str, what: &str, max: usize, may_be_empty: bool) -> Result<(), String> {
    if !may_be_empty && value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    if let Some(c) = value.chars().find(|c| !is_allowed_in_text(*c)) {
        return Err(format!(
            "{what} contains control characters (U+{:04X}); only tab, line feed and \
             carriage return are allowed",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Whether `c` may appear in product text. Text pasted from spreadsheets and editors carries
/// tabs and CR LF line ends, which are kept as they are. Refused: NUL and the other C0 and C1
/// controls (NUL truncates strings in PHP's C extensions and MySQL clients; the others are
/// invisible and corrupt exports), DEL, and the Unicode bidirectional embedding, override and
/// isolate controls (U+202A..U+202E, U+2066..U+2069), which make text display in another
/// order than it is stored ("Trojan Source").
pub fn is_allowed_in_text(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || !(c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c))
}

/// Parses the line format of the product this platform replaces: one product per line,
/// `Name|Price|Description`, the description optional and free to contain `|`. Blank lines
/// and lines starting with `#` are skipped.
pub fn parse_product_lines(text: &str) -> Result<Vec<Product>, ValidationError> {
    let mut products = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let field = format!("sample_products line {}", index + 1);
        let mut parts = line.splitn(3, '|');
        let name = parts.next().unwrap_or_default().trim();
        let Some(price) = parts.next() else {
            return Err(ValidationError::new(
                field,
                format!("expected Name|Price|Description, got {line:?}"),
            ));
        };
        let price = Price::parse(price).map_err(|m| ValidationError::new(&field, m))?;
        let product = Product {
            name: name.to_owned(),
            price,
            description: parts.next().unwrap_or_default().trim().to_owned(),
        };
        product.validate(&field)?;
        products.push(product);
        if products.len() > MAX_PRODUCTS {
            return Err(ValidationError::new(
                "sample_products",
                format!("at most {MAX_PRODUCTS} products"),
            ));
        }
    }
    Ok(products)
}

/// Parses a JSON list of products: `[{"name": "...", "price": 5.99, "description": "..."}]`.
pub fn parse_product_json(text: &str) -> Result<Vec<Product>, ValidationError> {
    let products: Vec<Product> = serde_json::from_str(text)
        .map_err(|e| ValidationError::new("sample_products", format!("invalid JSON: {e}")))?;
    if products.len() > MAX_PRODUCTS {
        return Err(ValidationError::new(
            "sample_products",
            format!("at most {MAX_PRODUCTS} products"),
        ));
    }
    for (i, product) in products.iter().enumerate() {
        product.validate(&format!("sample_products[{i}]"))?;
    }
    Ok(products)
}

/// Parses products in either format: a JSON list when the text starts with `[`, the line
/// format otherwise.
pub fn parse_products(text: &str) -> Result<Vec<Product>, ValidationError> {
    if text.trim_start().starts_with('[') {
        parse_product_json(text)
    } else {
        parse_product_lines(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_format() {
        let products = parse_product_lines(
            "T-Shirt|599|Cotton t-shirt\nJeans|12.99|Denim | blue\n\n# x\nMug|3",
        )
        .unwrap();
        assert_eq!(products.len(), 3);
        assert_eq!(products[0].name, "T-Shirt");
        assert_eq!(products[0].price.as_str(), "599");
        assert_eq!(products[1].description, "Denim | blue");
        assert_eq!(products[2].description, "");
    }

    #[test]
    fn bad_lines_name_the_line_and_the_problem() {
        let err = parse_product_lines("Ok|1|fine\nBroken line").unwrap_err();
        assert_eq!(err.field, "sample_products line 2");
        assert!(err.message.contains("Name|Price|Description"), "{err}");

        let err = parse_product_lines("Ok|1|x\n\nNeg|-5|x").unwrap_err();
        assert_eq!(err.field, "sample_products line 3");
        assert!(err.message.contains("-5"), "{err}");

        let err = parse_product_lines("|5|no name").unwrap_err();
        assert!(err.message.contains("name is empty"), "{err}");

        for price in ["1.999", "abc", "1e5", "", "1.", ".5", "NaN"] {
            assert!(
                parse_product_lines(&format!("P|{price}|d")).is_err(),
                "{price:?} accepted"
            );
        }
    }

    #[test]
    fn option_like_and_shell_like_text_is_kept_as_data() {
        let products = parse_product_lines("--allow-root|1|$(rm -rf /); `id`").unwrap();
        assert_eq!(products[0].name, "--allow-root");
        assert_eq!(products[0].description, "$(rm -rf /); `id`");
    }

    #[test]
    fn parses_json_lists_with_numeric_or_text_prices() {
        let products = parse_products(
            r#"[{"name":"Mug","price":4.5},{"name":"Hat","price":"10","description":"Warm"}]"#,
        )
        .unwrap();
        assert_eq!(products[0].price.as_str(), "4.5");
        assert_eq!(products[1].description, "Warm");
        let err = parse_products(r#"[{"name":"Mug","price":-1}]"#).unwrap_err();
        assert!(err.message.contains("-1"), "{err}");
        let err = parse_products(r#"[{"name":"Mug","price":1,"colour":"red"}]"#).unwrap_err();
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn tabs_and_line_ends_from_spreadsheets_are_accepted() {
        let products = parse_product_json(
            r#"[{"name":"Mug\tlarge","price":1,"description":"Size\t10 cm\r\nColour\tblue\nok"}]"#,
        )
        .unwrap();
        assert_eq!(products[0].name, "Mug\tlarge");
        assert_eq!(products[0].description, "Size\t10 cm\r\nColour\tblue\nok");
        let products = parse_product_lines("Mug|1|Size\t10 cm\r\nHat|2|Wool\tcap").unwrap();
        assert_eq!(products[0].description, "Size\t10 cm");
        assert_eq!(products[1].description, "Wool\tcap");
    }

    #[test]
    fn characters_that_corrupt_or_disguise_text_are_refused() {
        for bad in [
            '\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{202e}', '\u{2066}',
        ] {
            let json =
                serde_json::json!([{"name": "Mug", "price": 1, "description": format!("a{bad}b")}]);
            let err = parse_product_json(&json.to_string()).unwrap_err();
            assert_eq!(err.field, "sample_products[0]", "{bad:?}");
            assert!(
                err.message.contains(&format!("U+{:04X}", u32::from(bad))),
                "{bad:?}: {err}"
            );
            let json = serde_json::json!([{"name": format!("a{bad}b"), "price": 1}]);
            assert!(
                parse_product_json(&json.to_string()).is_err(),
                "{bad:?} in a name"
            );
        }
        // Right-to-left text itself is fine; only the explicit controls are refused.
        parse_product_json(r#"[{"name":"كوب","price":1,"description":"ספל קפה ☕ 🚀"}]"#).unwrap();
    }

    #[test]
    fn limits_are_enforced() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(parse_product_lines(&format!("{long}|1|d")).is_err());
        let many = "P|1|d\n".repeat(MAX_PRODUCTS + 1);
        assert!(parse_product_lines(&many).is_err());
    }
}
