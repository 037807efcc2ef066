//! Inputs the fuzz targets (`fuzz/`) found, each kept here as a plain test with the
//! minimized input inline, so a fix stays fixed without running a fuzzer.
//!

mod common;

use matrix_leave::event;
use matrix_leave::json::{Mode, Value};
use matrix_leave::keys::ServerKey;
use matrix_leave::version::RoomVersion;

fn canonical(text: &[u8], mode: Mode) -> String {
    let v = Value::parse(text, mode)
        .unwrap_or_else(|e| panic!("{:?} does not parse: {e}", String::from_utf8_lossy(text)));
    v.to_canonical_string()
}

/// fuzz target `canonical_json`, crash-446a1cea and 79 more artifacts of the same cause
/// (fixed in 2a02c5f): in lenient mode (room versions 1 to 5) a number whose decimal text is
/// not integral, but whose nearest f64 is, prints in Python's float form (`1.0`, `0.0`,
/// `-0.0`, `4.444444400002039e+16`), and that text is integral, so it prints as an integer
/// the next time: the canonical form is not a fixed point.
#[test]
fn lenient_canonical_numbers_are_a_fixed_point() {
    let cases: [&str; 8] = [
        r#"{"a":1.00000000000000000001}"#,      // -> {"a":1.0} -> {"a":1}
        "55e-505",                              // -> 0.0 -> 0
        "-3e-5353",                             // -> -0.0 -> 0
        "-8711e-80871",                         // -> -0.0 -> 0
        "44444444000020389.888",                // -> 4.444444400002039e+16 -> 44444444000020390
        "90019370009842106342106367.999999206", // -> 9.001937000984211e+25 -> 90019370009842110000000000
        "-55555511111111111.1111111111040055555e5",
        r#"{"a":[38777777777777777777777777777777777777777777777777773.25]}"#,
    ];
    let mut failures = vec![];
    for text in cases {
        let once = canonical(text.as_bytes(), Mode::Lenient);
        let twice = canonical(once.as_bytes(), Mode::Lenient);
        if once != twice {
            failures.push(format!("{text}: {once} then {twice}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The consequence of the bug above for events: a room version 1-5 event carrying such a
/// number, signed by this library, no longer verifies once read back from the canonical
/// bytes it is sent as (a property the `event_properties` and `template` fuzz targets check).
#[test]
fn signed_lenient_event_verifies_after_its_wire_form() {
    let key = common::spec_key("ed25519:1");
    let server_key = ServerKey {
        key_id: "ed25519:1".into(),
        key: key.verify_key(),
        valid_until_ts: None,
        expired_ts: None,
    };
    for vid in ["1", "3", "5"] {
        let v = RoomVersion::get(vid).unwrap();
        let text = br#"{"type":"m.room.member","sender":"@a:a.example","state_key":"@a:a.example",
            "room_id":"!r:a.example","event_id":"$e:a.example","origin_server_ts":1,"depth":1,
            "prev_events":[],"auth_events":[],"content":{"membership":"leave","n":1.00000000000000000001}}"#;
        let mut ev = Value::parse(text, Mode::Lenient).unwrap();
        event::sign_event(&mut ev, v, "a.example", &key).unwrap();
        let wire = ev.to_canonical();
        let back = Value::parse(&wire, v.json_mode()).unwrap();
        let check = event::verify_event(&back, v, &mut |_| Ok(vec![server_key.clone()])).unwrap();
        assert!(
            check.signature_valid && check.content_hash_valid,
            "v{vid}: our own signed event fails after its wire form: {}",
            String::from_utf8_lossy(&wire)
        );
    }
}
