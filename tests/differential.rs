//! Differential test against Synapse's own libraries.
//!
//! `make test` runs `tests/oracle/synapse_oracle.py` in a virtual environment with
//! `matrix-synapse` from PyPI; it generates events of every room version (awkward Unicode,
//! edge integers, every redaction-relevant type) and records what canonicaljson, Synapse's
//! content hash, redaction, signing (signedjson) and event ID code produce. This test computes
//! the same with the library and requires every byte to agree.
//!
//! The file is named by `MXL_ORACLE_FILE`. Without it the test says so and checks nothing
//! (running `cargo test` alone does not install Synapse).

mod common;

use common::*;
use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::keys;
use matrix_leave::version::RoomVersion;

#[test]
fn every_event_matches_synapse_byte_for_byte() {
    let Ok(path) = std::env::var("MXL_ORACLE_FILE") else {
        eprintln!("MXL_ORACLE_FILE is not set: run `make test` to compare with Synapse");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let key = spec_key("ed25519:1");
    let mut failures = vec![];
    let mut count = 0;
    let mut per_version = [0usize; 13];
    for (n, line) in text.lines().enumerate() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let vid = rec["room_version"].as_str().unwrap();
        let v = RoomVersion::get(vid).unwrap();
        // The event as text, parsed by the library under the room version's rules.
        let raw = serde_json::to_string(&rec["event"]).unwrap();
        let ev = match Value::parse(raw.as_bytes(), v.json_mode()) {
            Ok(ev) => ev,
            Err(e) => {
                failures.push(format!("line {n}: parse: {e}"));
                continue;
            }
        };
        let mut problems = vec![];
        if ev.to_canonical_string() != rec["canonical"].as_str().unwrap() {
            problems.push("canonical JSON");
        }
        if event::content_hash_b64(&ev).unwrap() != rec["content_hash"].as_str().unwrap() {
            problems.push("content hash");
        }
        let red = event::redact(&ev, v).unwrap();
        // Synapse's redaction keeps parts of `unsigned`; the events here have none at top
        // level after signing input is built, so compare without it.
        let mut their_red = rec["redacted"].clone();
        if let Some(o) = their_red.as_object_mut() {
            o.remove("unsigned");
        }
        if theirs(&red) != their_red {
            problems.push("redaction");
        }
        let mut signed = ev.clone();
        event::sign_event(&mut signed, v, "remote.example", &key).unwrap();
        let mut their_signed = rec["signed"].clone();
        let mut ours_signed = theirs(&signed);
        // `unsigned` is not covered by hashes or signatures; Synapse's signing leaves it as it
        // was, and so does the library.
        for o in [&mut their_signed, &mut ours_signed] {
            if let Some(o) = o.as_object_mut() {
                o.remove("unsigned");
            }
        }
        if ours_signed != their_signed {
            problems.push("signed event");
        }
        let rh = keys::b64_encode(&event::reference_hash(&signed, v).unwrap());
        if rh != rec["reference_hash"].as_str().unwrap() {
            problems.push("reference hash");
        }
        if event::event_id(&signed, v).unwrap() != rec["event_id"].as_str().unwrap() {
            problems.push("event id");
        }
        if let Some(room) = rec.get("room_id") {
            if event::room_id_from_create_event(&signed).ok().as_deref() != room.as_str() {
                problems.push("room id");
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "line {n} (v{vid} {}): {}",
                rec["kind"],
                problems.join(", ")
            ));
        }
        count += 1;
        per_version[vid.parse::<usize>().unwrap()] += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 1000, "only {count} events compared");
    for (v, n) in per_version.iter().enumerate().skip(1) {
        assert!(*n > 0, "no events of room version {v}");
    }
    eprintln!("{count} events identical to Synapse's output");
}
