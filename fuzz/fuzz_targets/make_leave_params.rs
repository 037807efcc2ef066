//! Arbitrary room, user and origin strings -> `Resident::make_leave` over the rooms of
//! `leave_auth.json`.
//!
//! Input: `room_id \n user_id \n origin`; the fields are passed as they are (percent-encoded
//! or not).
//!
//! Properties: the answer is 200 or a documented refusal with its errcode in the body, never
//! a 500 (the host never fails); a 200 is a template for exactly the (decoded) user and room,
//! without hashes or signatures; and the template, completed and signed honestly by the
//! user's server with `leaving::complete_template`, is accepted by `send_leave` on the same
//! rooms.

#![no_main]

mod common;

use common::{CallHost, RESIDENT};
use libfuzzer_sys::fuzz_target;
use matrix_leave::json::{Mode, Value};
use matrix_leave::leaving::{self, encode_path_param, TemplateInput};
use matrix_leave::resident::{percent_decode, Resident, ResidentOptions, SendLeaveApi};

fuzz_target!(|data: &[u8]| {
    let Some((f, rest)) = common::fields(data, 2) else {
        return;
    };
    let Ok(origin) = std::str::from_utf8(rest) else {
        return;
    };
    let (room_raw, user_raw) = (f[0], f[1]);
    let host = CallHost::new();
    let resident = Resident::new(RESIDENT, ResidentOptions::default());
    let resp = resident.make_leave(&host, room_raw, user_raw, origin);
    assert!(
        host.stored.borrow().is_empty(),
        "make_leave stored something"
    );
    if resp.status != 200 {
        let e = resp.error.as_ref().expect("a refusal carries its error");
        assert_ne!(resp.status, 500, "500 with a host that never fails: {e}");
        assert!(matches!(resp.status, 400 | 403 | 404), "{e}");
        common::check_error_body(resp.status, &resp.body, e.errcode());
        return;
    }
    let room_id = percent_decode(room_raw, "roomId").unwrap();
    let user_id = percent_decode(user_raw, "userId").unwrap();
    assert_eq!(common::server_of(&user_id), Some(origin));
    let body = Value::parse(&resp.body, Mode::Strict).expect("a template is strict JSON");
    let ev = body.get("event").expect("the template has an event");
    let field = |k: &str| ev.get(k).and_then(Value::as_str);
    assert_eq!(field("room_id"), Some(room_id.as_str()));
    assert_eq!(field("sender"), Some(user_id.as_str()));
    assert_eq!(field("state_key"), Some(user_id.as_str()));
    assert_eq!(field("type"), Some("m.room.member"));
    for k in ["hashes", "signatures", "unsigned"] {
        assert!(ev.get(k).is_none(), "the template carries {k}");
    }

    // The leaving side completes it; the resident must take it.
    let done = leaving::complete_template(
        &body,
        &TemplateInput {
            room_id: &room_id,
            user_id: &user_id,
            server_name: origin,
            key: common::spec_key(),
            now_ms: Some(common::NOW_MS),
            reason: None,
            event_id: None,
        },
    )
    .expect("our own template completes");
    if !host.world.keys.contains_key(origin) {
        // The resident does not know this server's key: the leave cannot verify.
        return;
    }
    let sent = resident.send_leave(
        &host,
        &encode_path_param(&room_id),
        &encode_path_param(&done.event_id),
        &done.event.to_canonical(),
        origin,
        SendLeaveApi::V2,
    );
    assert_eq!(
        sent.status, 200,
        "a leave completed from our own template was refused: {:?}",
        sent.error
    );
    assert_eq!(host.stored.borrow().len(), 1);
});
