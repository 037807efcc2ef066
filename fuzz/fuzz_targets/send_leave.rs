//! PDU bytes -> `Resident::send_leave` against the rooms of `leave_auth.json`.
//!
//! Input: one flags byte, then the request body. The path room is the body's `room_id` when
//! it names a vector room, else `!v10joined:resident.example`; the path event ID is the one
//! the body's event has (so fuzzing reaches the checks after the ID check); the origin is
//! the sender's server.
//!
//! flags: bit 0 the v1 API; bit 1 origin fixed to `remote.example`; bit 2 path parameters
//! percent-encoded; bit 3 `acl_allows_leave`; bit 4 a wrong path event ID.
//!
//! Properties: never a 200 unless exactly one store (or none, for a duplicate); never a
//! store without a 200; an accepted event is the body's event (or its redaction), has the
//! path's ID, is a leave of its sender from the origin, and verifies independently with the
//! vector keys, so no change to a signed event can get a different event accepted; error
//! bodies carry the errcode; the host never fails here, so there is never a 500.

#![no_main]

mod common;

use common::{CallHost, RESIDENT, V10_JOINED};
use libfuzzer_sys::fuzz_target;
use matrix_leave::event;
use matrix_leave::json::{Mode, Value};
use matrix_leave::leaving::encode_path_param;
use matrix_leave::resident::{Resident, ResidentOptions, SendLeaveApi};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let host = CallHost::new();
    let world = host.world;
    let loose = Value::parse(body, Mode::Lenient).ok();
    let room_id = loose
        .as_ref()
        .and_then(|p| p.get("room_id"))
        .and_then(Value::as_str)
        .filter(|r| world.rooms.contains_key(*r))
        .unwrap_or(V10_JOINED)
        .to_string();
    let version = world.rooms[&room_id].version;
    let pdu = Value::parse(body, version.json_mode()).ok();
    let mut path_event_id = pdu
        .as_ref()
        .and_then(|p| common::id_of(p, version))
        .unwrap_or_else(|| "$unknown:remote.example".to_string());
    if flags & 16 != 0 {
        path_event_id.push('x');
    }
    let sender_server = pdu
        .as_ref()
        .and_then(|p| p.get("sender"))
        .and_then(Value::as_str)
        .and_then(common::server_of)
        .map(str::to_string);
    let origin = match (flags & 2, sender_server) {
        (0, Some(s)) => s,
        _ => "remote.example".to_string(),
    };
    let api = if flags & 1 != 0 {
        SendLeaveApi::V1
    } else {
        SendLeaveApi::V2
    };
    let (path_room, path_id) = if flags & 4 != 0 {
        (
            encode_path_param(&room_id),
            encode_path_param(&path_event_id),
        )
    } else {
        (room_id.clone(), path_event_id.clone())
    };
    let resident = Resident::new(
        RESIDENT,
        ResidentOptions {
            enable_v1: true,
            acl_allows_leave: flags & 8 != 0,
        },
    );
    let resp = resident.send_leave(&host, &path_room, &path_id, body, &origin, api);
    let stored = host.stored.borrow();

    if resp.status != 200 {
        assert!(stored.is_empty(), "refused ({}) but stored", resp.status);
        assert!(resp.accepted.is_none());
        let e = resp.error.as_ref().expect("a refusal carries its error");
        assert_eq!(e.http_status(), resp.status);
        assert_ne!(resp.status, 500, "500 with a host that never fails: {e}");
        common::check_error_body(resp.status, &resp.body, e.errcode());
        return;
    }

    assert!(resp.error.is_none());
    let expected_body: &[u8] = match api {
        SendLeaveApi::V2 => b"{}",
        SendLeaveApi::V1 => b"[200,{}]",
    };
    assert_eq!(resp.body, expected_body);
    let acc = resp
        .accepted
        .as_ref()
        .expect("a 200 says what was accepted");
    assert_eq!(
        acc.event_id, path_event_id,
        "accepted under another ID than the path's"
    );
    assert_eq!(flags & 16, 0, "accepted with a wrong path event ID");
    let sent = pdu.expect("accepted a body that does not parse in the room's mode");
    if acc.duplicate {
        assert!(stored.is_empty(), "a duplicate was stored again");
        assert!(
            world.rooms[&room_id].events.contains_key(&acc.event_id),
            "a duplicate of an event the host does not have"
        );
        return;
    }
    assert_eq!(stored.len(), 1, "a 200 must mean exactly one store");
    let (s_room, s_id, s_ev, s_soft) = &stored[0];
    assert_eq!(s_room, &room_id);
    assert_eq!(s_id, &acc.event_id);
    assert_eq!(s_ev, &acc.event);
    assert_eq!(*s_soft, acc.soft_failed);
    if acc.soft_failed {
        assert!(acc.relay_to.is_empty(), "a soft-failed event is relayed");
    }
    assert!(!acc.relay_to.contains(&origin) && !acc.relay_to.iter().any(|s| s == RESIDENT));

    // The stored event is the one sent (its `unsigned` may be dropped), or its redacted copy.
    if acc.redacted {
        assert_eq!(s_ev, &event::redact(&sent, version).unwrap());
    } else {
        let mut bare = sent.clone();
        if let Some(obj) = bare.as_object_mut() {
            obj.remove("unsigned");
        }
        assert!(
            s_ev == &sent || s_ev == &bare,
            "stored another event than the one sent"
        );
    }
    // It is a leave of its sender, from the origin, with the path's ID...
    assert_eq!(
        s_ev.get("type").and_then(Value::as_str),
        Some("m.room.member")
    );
    let sender = s_ev.get("sender").and_then(Value::as_str).unwrap();
    assert_eq!(s_ev.get("state_key").and_then(Value::as_str), Some(sender));
    assert_eq!(common::server_of(sender), Some(origin.as_str()));
    assert_eq!(
        s_ev.get("content")
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str),
        Some("leave")
    );
    assert_eq!(common::id_of(s_ev, version).as_deref(), Some(s_id.as_str()));
    // ... and it verifies on its own: no change to a signed leave gets another one accepted.
    let check = event::verify_event(s_ev, version, &mut |s| {
        Ok(world.keys.get(s).cloned().unwrap_or_default())
    })
    .expect("the accepted event can be checked");
    assert!(
        check.signature_valid,
        "accepted an event whose signature does not verify"
    );
    assert_eq!(check.content_hash_valid, !acc.redacted);
});
