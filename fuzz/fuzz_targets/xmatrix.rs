//! X-Matrix `Authorization` headers: parse and verify a fuzzed header, and round-trip a
//! header we produce.
//!
//! Input: `header \n method \n uri \n origin \n destination \n` then an optional request body
//! (used as the signed `content` when it is strict JSON).
//!
//! Properties: a parsed header has a valid origin; verification only succeeds for the parsed
//! origin and a matching (or absent) destination, and fails with `M_UNAUTHORIZED` (400 or
//! 401) otherwise; `xmatrix::authorization` for any valid origin and any destination, method
//! and uri parses back to the same values and verifies at the destination; for an invalid
//! origin it is refused as 400.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use matrix_leave::error::Code;
use matrix_leave::json::{Mode, Value};
use matrix_leave::keys::VerifyKey;
use matrix_leave::xmatrix;
use matrix_leave::Error;

fn keys(_server: &str) -> Result<Vec<(String, VerifyKey)>, Error> {
    Ok(vec![(
        "ed25519:1".to_string(),
        common::spec_key().verify_key(),
    )])
}

fuzz_target!(|data: &[u8]| {
    let Some((f, rest)) = common::fields(data, 5) else {
        return;
    };
    let (header, method, uri, origin, destination) = (f[0], f[1], f[2], f[3], f[4]);
    let content = if rest.is_empty() {
        None
    } else {
        Value::parse(rest, Mode::Strict).ok()
    };

    // The fuzzed header.
    let parsed = xmatrix::parse(header);
    let verified = xmatrix::verify(
        header,
        method,
        uri,
        content.as_ref(),
        destination,
        &mut keys,
    );
    match &parsed {
        Ok(p) => {
            assert!(xmatrix::is_valid_server_name(&p.origin));
            match &verified {
                Ok(o) => {
                    assert_eq!(o, &p.origin);
                    assert!(p.destination.as_deref().is_none_or(|d| d == destination));
                    assert_eq!(p.key, "ed25519:1");
                }
                Err(e) => assert_eq!(e.code, Code::Unauthorized, "{e}"),
            }
        }
        Err(e) => {
            assert_eq!(e.code, Code::MalformedAuth);
            assert_eq!((e.http_status(), e.errcode()), (400, "M_UNAUTHORIZED"));
            assert_eq!(verified.as_ref().unwrap_err(), e);
        }
    }

    // A header we produce round-trips.
    let key = common::spec_key();
    let made = xmatrix::authorization(key, origin, destination, method, uri, content.as_ref())
        .expect("any strings can be signed");
    match xmatrix::parse(&made) {
        Ok(p) => {
            assert_eq!(p.origin, origin);
            assert_eq!(p.destination.as_deref(), Some(destination));
            assert_eq!(p.key, key.key_id());
            let back =
                xmatrix::verify(&made, method, uri, content.as_ref(), destination, &mut keys);
            assert_eq!(
                back.as_deref(),
                Ok(origin),
                "our own header does not verify"
            );
        }
        Err(e) => {
            assert!(
                !xmatrix::is_valid_server_name(origin),
                "our header for a valid origin does not parse: {e}\n{made}"
            );
            assert_eq!(e.code, Code::MalformedAuth);
        }
    }
});
