//! Checks of a served OpenAPI document, shared by the services' test suites (feature
//! `test-support`): which operations it documents, and whether JSON fits its schemas.

use serde_json::Value;

/// The documented operations of `document`, as sorted `(method, path)` pairs.
pub fn documented(document: &Value) -> Vec<(String, String)> {
    let mut operations: Vec<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    operations.sort();
    operations
}

/// Validates `instance` against `schema`, whose `$ref`s point into `document`'s
/// components; panics naming `label` and every error.
pub fn check(document: &Value, schema: &Value, instance: &Value, label: &str) {
    let mut root = schema.clone();
    root.as_object_mut().expect("a schema object").insert("components".to_owned(), document["components"].clone());
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("[{label}] the schema does not compile: {e}\n{schema}"));
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "[{label}] {instance}\ndoes not fit {schema}:\n{}", errors.join("\n"));
}

/// Whether `instance` fits `schema`, whose `$ref`s point into `document`'s components.
pub fn fits(document: &Value, schema: &Value, instance: &Value) -> bool {
    let mut root = schema.clone();
    root.as_object_mut().expect("a schema object").insert("components".to_owned(), document["components"].clone());
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e}\n{schema}"))
        .is_valid(instance)
}

/// Parameter `name` of `method path` (its `in`, `schema`, ...); panics when there is none.
pub fn parameter<'a>(document: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let parameters = document["paths"][path][method]["parameters"].as_array();
    let named = |p: &&Value| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name));
    parameters
        .into_iter()
        .flatten()
        .find(named)
        .unwrap_or_else(|| panic!("{method} {path} documents no parameter {name}"))
}

/// The JSON schema of the request body of `method path`; panics when there is none.
pub fn request_schema<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema = &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents no JSON body");
    schema
}

/// The JSON schema of the `status` answer of `method path`; panics when there is none.
pub fn answer_schema<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema =
        &document["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents no {status} answer");
    schema
}

/// Checks every example of `document` (requests, answers, component schemas) against
/// its schema; returns how many there were.
pub fn check_every_example(document: &Value) -> usize {
    let mut checked = 0;
    for (method, path) in documented(document) {
        let operation = &document["paths"][&path][&method];
        let mut media =
            vec![(format!("{method} {path} request"), &operation["requestBody"]["content"]["application/json"])];
        for (status, answer) in operation["responses"].as_object().expect("responses") {
            media.push((format!("{method} {path} {status}"), &answer["content"]["application/json"]));
        }
        for (label, media) in media {
            if let Some(example) = media.get("example") {
                check(document, &media["schema"], example, &label);
                checked += 1;
            }
        }
    }
    for (name, schema) in document["components"]["schemas"].as_object().expect("schemas") {
        if let Some(example) = schema.get("example") {
            check(document, schema, example, name);
            checked += 1;
        }
    }
    checked
}
