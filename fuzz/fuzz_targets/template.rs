//! make_leave response bytes -> `leaving::complete_template`, as the leaving side does with a
//! resident's answer.
//!
//! Input: `room_id \n user_id \n options \n` then the response body. Options: `n` keeps the
//! template's `origin_server_ts` (no `now_ms`), `r` adds a reason, `e` fixes the v1/v2 event
//! ID. The leaving server is the user's server.
//!
//! Properties: a completed leave is exactly for the room and user asked for, carries no
//! `unsigned`, has the ID `event::event_id` gives it and the matching send_leave URIs,
//! verifies with our key through `event::verify_event` (signature and content hash), and
//! its redaction is idempotent. A refusal is a 400.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use matrix_leave::event;
use matrix_leave::json::{Mode, Value};
use matrix_leave::leaving::{self, TemplateInput};

fuzz_target!(|data: &[u8]| {
    let Some((f, rest)) = common::fields(data, 3) else {
        return;
    };
    let (room_id, user_id, opts) = (f[0], f[1], f[2]);
    // The leaving side reads a make_leave answer leniently.
    let Ok(response) = Value::parse(rest, Mode::Lenient) else {
        return;
    };
    let server_name = common::server_of(user_id).unwrap_or("remote.example");
    let event_id = format!("$fuzz:{server_name}");
    let input = TemplateInput {
        room_id,
        user_id,
        server_name,
        key: common::spec_key(),
        now_ms: (!opts.contains('n')).then_some(common::NOW_MS),
        reason: opts.contains('r').then_some("fuzzing \u{1F600}"),
        event_id: opts.contains('e').then_some(event_id.as_str()),
    };
    let done = match leaving::complete_template(&response, &input) {
        Ok(d) => d,
        Err(e) => {
            assert_eq!(e.http_status(), 400, "{e}");
            return;
        }
    };
    let v = done.room_version;
    let ev = &done.event;
    let field = |k: &str| ev.get(k).and_then(Value::as_str);
    assert!(field("room_id").is_none_or(|r| r == room_id));
    assert_eq!(field("sender"), Some(user_id));
    assert_eq!(field("state_key"), Some(user_id));
    assert_eq!(field("type"), Some("m.room.member"));
    assert!(ev.get("unsigned").is_none());
    assert_eq!(
        ev.get("content")
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str),
        Some("leave")
    );
    assert_eq!(event::event_id(ev, v).unwrap(), done.event_id);
    assert_eq!(
        done.uri_v2,
        leaving::send_leave_uri(room_id, &done.event_id, 2)
    );
    assert_eq!(
        done.uri_v1,
        leaving::send_leave_uri(room_id, &done.event_id, 1)
    );
    if v.event_id_is_hash() {
        assert!(ev.get("event_id").is_none());
    }
    if let Some(ts) = input.now_ms {
        assert_eq!(ev.get("origin_server_ts").and_then(Value::as_i64), Some(ts));
    }

    // Redaction is idempotent.
    let r1 = event::redact(ev, v).unwrap();
    assert_eq!(
        event::redact(&r1, v).unwrap(),
        r1,
        "redaction is not idempotent"
    );

    // It verifies with our key. The user's server must exist for a signature to be required
    // of it; in versions 5+ a key only counts at an integer origin_server_ts.
    if common::server_of(user_id).is_none() {
        return;
    }
    if v.enforce_key_validity && ev.get("origin_server_ts").and_then(Value::as_i64).is_none() {
        return;
    }
    let check = event::verify_event(ev, v, &mut |_| Ok(vec![common::spec_server_key()]))
        .expect("a completed leave can be checked");
    assert!(
        check.signature_valid,
        "our own signature does not verify: {:?}",
        check.signature_error
    );
    assert!(
        check.content_hash_valid,
        "our own content hash does not verify"
    );
    // It also survives its wire form: the canonical bytes parse back to the same event.
    let wire = Value::parse(&ev.to_canonical(), v.json_mode());
    if let Ok(back) = wire {
        assert_eq!(
            &back, ev,
            "a completed leave changes through its canonical form"
        );
    }
});
