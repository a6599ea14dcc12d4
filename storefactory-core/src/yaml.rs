//! The one place YAML is read and written, so the YAML library can change here alone.

use serde::Deserialize as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Quotes `text` as a YAML double-quoted scalar that parses back to exactly `text`, whatever
/// it contains: the escape function of blueprint templates.
///
/// Everything outside printable ASCII is escaped, so no character (line breaks of any kind,
/// byte-order marks, quotes, `#`, `: `) can end the scalar or change the document's shape.
pub fn quote_scalar(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Parses every document of a YAML stream into JSON values, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document).map_err(|e| e.to_string())?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Parses one YAML document into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// Writes `value` as YAML.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_yaml::to_string(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_scalars_round_trip_whatever_they_contain() {
        let nasty = [
            "plain",
            "",
            "a: b",
            "- item",
            "# comment",
            "\"quoted\" and 'single'",
            "line\nbreak\r\nand\ttab",
            "unicode é ✓ 🛒",
            "\u{85}next line\u{2028}ls\u{2029}ps\u{feff}bom",
            "}{][,&*!|>%@`",
            "x\nkind: Secret\nmetadata:\n  name: evil",
            "\\backslash\\",
            "null",
            "true",
            "0x10",
        ];
        for text in nasty {
            let doc = format!("key: {}\nother: fixed\n", quote_scalar(text));
            let parsed = parse_documents(&doc).unwrap();
            assert_eq!(parsed.len(), 1);
            assert_eq!(
                parsed[0]["key"],
                serde_json::Value::String(text.to_owned()),
                "{doc}"
            );
            assert_eq!(parsed[0]["other"], "fixed");
            assert_eq!(parsed[0].as_object().unwrap().len(), 2);
        }
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\n# nothing\n---\na: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
    }
}
