//! Properties of events built from any parsed object.
//!
//! Input: one byte choosing the room version (and seeding the mutations), then JSON text
//! (parsed leniently).
//!
//! Properties:
//! - redaction is idempotent, in every room version;
//! - the object, signed by every server `event::required_signers` names, verifies (signature
//!   and content hash), and so does the event read back from its canonical bytes;
//! - after a single-byte change to those bytes, the signature only verifies if the
//!   redacted signing bytes are unchanged, and the content hash only matches if the hashed
//!   content is unchanged; a change that leaves the event equal still verifies.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use matrix_leave::event;
use matrix_leave::json::{Mode, Value};
use matrix_leave::version::{RoomVersion, ROOM_VERSIONS};

fn keys_for(_: &str) -> Result<Vec<matrix_leave::keys::ServerKey>, matrix_leave::Error> {
    Ok(vec![common::spec_server_key()])
}

/// A small deterministic generator for the mutation positions.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn signed_parts(ev: &Value, v: &RoomVersion) -> (Vec<u8>, [u8; 32]) {
    (
        event::redacted_signing_bytes(ev, v).unwrap(),
        event::content_hash(ev).unwrap(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let Ok(mut ev) = Value::parse(text, Mode::Lenient) else {
        return;
    };
    if ev.as_object().is_none() {
        assert!(event::redact(&ev, &ROOM_VERSIONS[0]).is_err());
        return;
    }
    for v in &ROOM_VERSIONS {
        let r1 = event::redact(&ev, v).unwrap();
        let r2 = event::redact(&r1, v).unwrap();
        assert_eq!(r1, r2, "redaction is not idempotent in v{}", v.id);
    }

    let v = &ROOM_VERSIONS[sel as usize % ROOM_VERSIONS.len()];
    let obj = ev.as_object_mut().unwrap();
    if obj
        .get("sender")
        .and_then(Value::as_str)
        .and_then(common::server_of)
        .is_none()
    {
        obj.insert("sender".into(), Value::from("@fuzz:fuzz.example"));
    }
    if v.enforce_key_validity
        && obj
            .get("origin_server_ts")
            .and_then(Value::as_i64)
            .is_none()
    {
        obj.insert("origin_server_ts".into(), Value::Int(1));
    }
    let Ok(signers) = event::required_signers(&ev, v) else {
        return;
    };
    for s in &signers {
        event::sign_event(&mut ev, v, s, common::spec_key()).unwrap();
    }
    let check = event::verify_event(&ev, v, &mut keys_for).unwrap();
    assert!(
        check.signature_valid && check.content_hash_valid,
        "a freshly signed event does not verify in v{}: {:?}",
        v.id,
        check.signature_error
    );
    let (signed, hashed) = signed_parts(&ev, v);

    let wire = ev.to_canonical();
    let back = Value::parse(&wire, Mode::Lenient).expect("canonical bytes parse");
    let check = event::verify_event(&back, v, &mut keys_for).unwrap();
    assert!(
        check.signature_valid && check.content_hash_valid,
        "a signed event does not verify once read back from its canonical bytes (v{})",
        v.id
    );

    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (wire.len() as u64) ^ ((sel as u64) << 32);
    for &b in text.iter().take(64) {
        state = state.rotate_left(5) ^ b as u64;
        state = state.wrapping_mul(0x100_0000_01b3);
    }
    if state == 0 {
        state = 1;
    }
    for _ in 0..8 {
        let pos = (next(&mut state) % wire.len() as u64) as usize;
        let delta = (next(&mut state) % 255 + 1) as u8;
        let mut bytes = wire.clone();
        bytes[pos] = bytes[pos].wrapping_add(delta);
        let Ok(m) = Value::parse(&bytes, Mode::Lenient) else {
            continue;
        };
        let Ok(mc) = event::verify_event(&m, v, &mut keys_for) else {
            continue;
        };
        let (m_signed, m_hashed) = signed_parts(&m, v);
        if mc.signature_valid {
            assert_eq!(
                String::from_utf8_lossy(&m_signed),
                String::from_utf8_lossy(&signed),
                "the signature still verifies after a change to the signed part (byte {pos})"
            );
        }
        if mc.content_hash_valid {
            assert_eq!(
                m_hashed, hashed,
                "the content hash still matches after a change to the hashed part (byte {pos})"
            );
        }
        if m == back {
            assert!(
                mc.signature_valid && mc.content_hash_valid,
                "an equal event fails"
            );
        }
    }
});
