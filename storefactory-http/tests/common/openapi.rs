//! Checks answers against the OpenAPI document the server publishes, so that the document
//! cannot drift from what the server says.
//!
//! A small validator for the part of OpenAPI 3.0 schemas the document uses: `$ref`, `type`,
//! `nullable`, `enum`, `required`, `properties`, `items`, `oneOf` and `allOf` (whose object
//! parts are merged, as a reader of the document would). It is strict on purpose: an object
//! may carry only documented properties, unless its schema says `additionalProperties`.

use serde_json::Value;

/// The document, as the server embeds it.
pub fn document() -> Value {
    serde_json::from_str(storefactory_http::OPENAPI_JSON).expect("the OpenAPI document is JSON")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {r}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// The schema of the JSON answer `status` of `method path` (`path` as written in the
/// document, like `/api/stores/{id}`). Panics when the answer is undocumented.
pub fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let operation = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    let response = resolve(doc, response);
    response["content"]["application/json"]["schema"].clone()
}

/// The problems of `value` against `schema`, each with its JSON path; empty when it fits.
pub fn problems(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(doc, schema, value, "$", &mut out);
    out
}

/// Merges `allOf` parts (and plain schemas) into one list of parts to check together.
fn parts<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    let schema = resolve(doc, schema);
    match schema.get("allOf").and_then(Value::as_array) {
        Some(all) => all.iter().for_each(|part| parts(doc, part, out)),
        None => out.push(schema),
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("unsupported schema type {other}"),
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let mut all = Vec::new();
    parts(doc, schema, &mut all);
    if value.is_null() {
        let typed = all.iter().any(|s| s.get("type").is_some());
        if typed && !all.iter().any(|s| s["nullable"] == true) {
            out.push(format!("{at}: null where the document does not allow it"));
        }
        return;
    }
    let mut known = Vec::<&str>::new();
    let mut open = false;
    let mut is_object = false;
    for part in &all {
        if let Some(t) = part.get("type").and_then(Value::as_str) {
            if !type_matches(t, value) {
                out.push(format!("{at}: expected {t}, got {value}"));
                return;
            }
            is_object |= t == "object";
        }
        if let Some(options) = part.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            out.push(format!("{at}: {value} is not one of {options:?}"));
        }
        if let Some(options) = part.get("oneOf").and_then(Value::as_array) {
            let fitting = options
                .iter()
                .filter(|o| problems(doc, o, value).is_empty())
                .count();
            if fitting != 1 {
                out.push(format!("{at}: {value} fits {fitting} of the oneOf schemas"));
            }
        }
        if let Some(required) = part.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if value.get(name).is_none() {
                    out.push(format!("{at}: required property {name} is missing"));
                }
            }
        }
        if let Some(properties) = part.get("properties").and_then(Value::as_object) {
            is_object = true;
            for (name, property) in properties {
                known.push(name);
                if let Some(v) = value.get(name) {
                    check(doc, property, v, &format!("{at}.{name}"), out);
                }
            }
        }
        if part.get("additionalProperties").is_some_and(|a| a != false) {
            open = true;
        }
        if let (Some(items), Some(values)) = (part.get("items"), value.as_array()) {
            for (i, v) in values.iter().enumerate() {
                check(doc, items, v, &format!("{at}[{i}]"), out);
            }
        }
    }
    if is_object
        && !open
        && let Some(map) = value.as_object()
    {
        for name in map.keys() {
            if !known.contains(&name.as_str()) {
                out.push(format!("{at}: property {name} is not documented"));
            }
        }
    }
}

/// Panics unless `body`, answered with `status` to `method path`, fits the document.
pub fn assert_documented(method: &str, path: &str, status: u16, body: &Value) {
    let doc = document();
    let schema = response_schema(&doc, method, path, status);
    if schema.is_null() {
        return;
    }
    let found = problems(&doc, &schema, body);
    assert!(
        found.is_empty(),
        "{method} {path} {status} does not fit the OpenAPI document:\n  {}\nbody: {body}",
        found.join("\n  ")
    );
}

/// The path template of the document that `path` (without its query) falls under, like
/// `/api/stores/{id}` for `/api/stores/abc`.
pub fn template_for(doc: &Value, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().find_map(|template| {
        let parts: Vec<&str> = template.split('/').collect();
        let fits = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('{') && p.ends_with('}') && !s.is_empty()));
        fits.then(|| template.clone())
    })
}

/// Checks a JSON answer to `method path` against the document when it documents the
/// operation: an undocumented status or shape panics. Answers of routes the document does
/// not describe (the dashboard's files, the fallback) are left alone.
pub fn check_answer(method: &str, path: &str, status: u16, body: &Value) {
    let doc = document();
    let Some(template) = template_for(&doc, path) else {
        return;
    };
    if !doc["paths"][&template][method.to_ascii_lowercase()].is_object() {
        return;
    }
    assert_documented(method, &template, status, body);
}
