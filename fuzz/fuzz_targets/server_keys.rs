//! `/_matrix/key/v2/server` documents -> `keys::verify_server_key_document`.
//!
//! Input: `requested_server \n` then the document (parsed in strict mode, as the C ABI does).
//!
//! Properties: an accepted document names the requested server, lists at least one current
//! ed25519 key, and is self-signed by one of its current keys (checked again with
//! `keys::verify_json`); the keys returned are exactly the ed25519 entries of
//! `verify_keys` (with `valid_until_ts`) and `old_verify_keys` (with `expired_ts`). A refusal
//! is a 400. A document we build with `keys::server_key_document` always verifies.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use matrix_leave::json::{Mode, Value};
use matrix_leave::keys;

fuzz_target!(|data: &[u8]| {
    let Some((f, rest)) = common::fields(data, 1) else {
        return;
    };
    let requested = f[0];
    if let Ok(doc) = Value::parse(rest, Mode::Strict) {
        match keys::verify_server_key_document(&doc, requested) {
            Ok(found) => {
                assert_eq!(
                    doc.get("server_name").and_then(Value::as_str),
                    Some(requested)
                );
                let until = doc.get("valid_until_ts").and_then(Value::as_i64).unwrap();
                let current: Vec<_> = found.iter().filter(|k| k.expired_ts.is_none()).collect();
                assert!(!current.is_empty(), "accepted without a current key");
                let listed = doc.get("verify_keys").and_then(Value::as_object).unwrap();
                let n_current = listed.keys().filter(|k| k.starts_with("ed25519:")).count();
                assert_eq!(current.len(), n_current);
                for k in &found {
                    assert!(k.key_id.starts_with("ed25519:"));
                    match k.expired_ts {
                        None => assert_eq!(k.valid_until_ts, Some(until)),
                        Some(_) => assert!(k.valid_until_ts.is_none()),
                    }
                }
                let pairs: Vec<_> = current.iter().map(|k| (k.key_id.clone(), k.key)).collect();
                keys::verify_json(&doc, requested, &pairs)
                    .expect("accepted a document its current keys did not sign");
            }
            Err(e) => assert_eq!(e.http_status(), 400, "{e}"),
        }
    }

    // Our own document for the requested name verifies.
    let ours = keys::server_key_document(requested, common::spec_key(), common::NOW_MS, &[])
        .expect("a key document can be built for any name");
    let back = keys::verify_server_key_document(&ours, requested)
        .expect("our own key document does not verify");
    assert_eq!(back.len(), 1);
    // Through its wire form too.
    let wire = Value::parse(&ours.to_canonical(), Mode::Strict).unwrap();
    keys::verify_server_key_document(&wire, requested).expect("our document's wire form");
});
