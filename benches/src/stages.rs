//! The stages of matrix-leave's receive path, each timed on its own from the previous
//! stage's output, and the floor: what any implementation has to do at least.

use matrix_leave::auth;
use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::keys;
use matrix_leave::resident;
use matrix_leave::version::RoomVersion;
use sha2::{Digest, Sha256};

use crate::world::{Leave, Room};

/// Parse: the body into a value, judged by the room version's number rules.
pub fn parse(leave: &Leave, v: &RoomVersion) -> bool {
    Value::parse(&leave.body, v.json_mode()).is_ok()
}

/// The format checks on the parsed event.
pub fn format(leave: &Leave, v: &RoomVersion) -> bool {
    resident::check_format(&leave.pdu, v).is_ok()
}

/// Canonical JSON of the whole event (the serialisation the two hashes each repeat on
/// their part of it).
pub fn canonical(leave: &Leave) -> bool {
    !leave.pdu.to_canonical().is_empty()
}

/// The content hash: canonical JSON without `hashes`, `signatures`, `unsigned`, and SHA-256.
pub fn content_hash(leave: &Leave) -> bool {
    event::content_hash(&leave.pdu).is_ok()
}

/// Redaction, the canonical signing bytes and their SHA-256 (the reference hash).
pub fn reference_hash(leave: &Leave, v: &RoomVersion) -> bool {
    event::reference_hash(&leave.pdu, v).is_ok()
}

/// The ed25519 signature over the signing bytes (key already decoded, signature in base64,
/// as the path has them).
pub fn verify(leave: &Leave, key: &keys::VerifyKey) -> bool {
    key.verify(&leave.signed_bytes, &leave.sig_b64).is_ok()
}

/// The auth rules: the auth-events selection check, the leave rules against the auth
/// events, and against the current state (with the reference counting a host lookup makes).
pub fn auth_rules(leave: &Leave, room: &Room, v: &RoomVersion) -> bool {
    let by_key = match auth::check_auth_events(&leave.pdu, &leave.auth_events, &room.room_id, v) {
        Ok(m) => m,
        Err(_) => return false,
    };
    let create_v12 = if v.create_in_auth_events {
        None
    } else {
        room.state_id("m.room.create", "")
            .map(|id| room.events[id].clone())
    };
    let against_auth = auth::check_leave(&leave.pdu, v, &mut |ty, sk| {
        if ty == "m.room.create" {
            if let Some(c) = &create_v12 {
                return Ok(Some(&**c));
            }
        }
        Ok(by_key.get(&(ty, sk)).copied())
    });
    let against_state = auth::check_leave(&leave.pdu, v, &mut |ty, sk| {
        Ok(room.state_id(ty, sk).map(|id| room.events[id].clone()))
    });
    against_auth.is_ok() && against_state.is_ok()
}

// ---- the floor ---------------------------------------------------------------------------

/// serde_json into its generic value.
pub fn floor_parse(leave: &Leave) -> bool {
    serde_json::from_slice::<serde_json::Value>(&leave.body).is_ok()
}

/// Two SHA-256 passes over the body.
pub fn floor_sha2(leave: &Leave) -> bool {
    let a = Sha256::digest(&leave.body);
    let b = Sha256::digest(&leave.body);
    std::hint::black_box(a);
    std::hint::black_box(b);
    true
}

/// One ed25519-dalek 2 verify over the signed bytes, decoding the public key first.
pub fn floor_verify_decode(leave: &Leave, pk: &[u8; 32]) -> bool {
    use ed25519_dalek::Verifier;
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
        return false;
    };
    key.verify(
        &leave.signed_bytes,
        &ed25519_dalek::Signature::from_bytes(&leave.sig),
    )
    .is_ok()
}

/// The same with the key decoded once.
pub fn floor_verify_cached(leave: &Leave, key: &ed25519_dalek::VerifyingKey) -> bool {
    use ed25519_dalek::Verifier;
    key.verify(
        &leave.signed_bytes,
        &ed25519_dalek::Signature::from_bytes(&leave.sig),
    )
    .is_ok()
}

/// ed25519-dalek 3 (the version ruma-signatures uses), key decoded once.
pub fn floor_verify_v3(leave: &Leave, key: &ed25519_dalek_3::VerifyingKey) -> bool {
    use ed25519_dalek_3::Verifier;
    key.verify(
        &leave.signed_bytes,
        &ed25519_dalek_3::Signature::from_bytes(&leave.sig),
    )
    .is_ok()
}

/// The floor: parse, two hashes, one verify decoding the key.
pub fn floor(leave: &Leave, pk: &[u8; 32]) -> bool {
    floor_parse(leave) & floor_sha2(leave) & floor_verify_decode(leave, pk)
}

/// The floor with the key decoded once.
pub fn floor_cached(leave: &Leave, key: &ed25519_dalek::VerifyingKey) -> bool {
    floor_parse(leave) & floor_sha2(leave) & floor_verify_cached(leave, key)
}
