//! Helpers shared by the integration tests: loading the vector files (read with serde_json, an
//! independent parser) and converting between serde_json values and the crate's values.

#![allow(dead_code)]

pub mod host;
pub mod sync_host;

use std::path::PathBuf;

use matrix_leave::json::{Mode, Value};
use matrix_leave::keys::SigningKey;

/// The directory holding the copied vector files.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Loads `tests/vectors/<name>`.
pub fn load(name: &str) -> serde_json::Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Loads `tests/cases/<name>`.
pub fn load_case(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The cases array of a vector file.
pub fn cases(file: &serde_json::Value) -> &Vec<serde_json::Value> {
    file["cases"].as_array().unwrap()
}

/// A serde_json value as one of ours, through its text.
pub fn ours(v: &serde_json::Value) -> Value {
    Value::parse(serde_json::to_string(v).unwrap().as_bytes(), Mode::Lenient).unwrap()
}

/// One of our values as serde_json, through its text.
pub fn theirs(v: &Value) -> serde_json::Value {
    serde_json::from_slice(&v.to_canonical()).unwrap()
}

/// The spec's test key (seed from the vector file's hex form), with this key ID.
pub fn spec_key(key_id: &str) -> SigningKey {
    let seed = hex("6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d");
    SigningKey::from_seed(&seed, key_id).unwrap()
}

/// A named key from a vector file's `keys` table.
///
/// `spec_test_key` names the specification's test key even where a file labels its key table
/// differently.
pub fn named_key(file: &serde_json::Value, name: &str, key_id: &str) -> SigningKey {
    if name == "spec_test_key" && file["keys"].get(name).is_none() {
        return spec_key(key_id);
    }
    let k = &file["keys"][name];
    let seed = hex(k["seed_hex"]
        .as_str()
        .unwrap_or_else(|| panic!("no key {name}")));
    SigningKey::from_seed(&seed, key_id).unwrap()
}

/// Decodes hex.
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
