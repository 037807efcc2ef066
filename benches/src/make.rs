//! make_leave contenders' baseline: the bare template, built straight from the room held in
//! memory, with no host callbacks, no JSON crossing a boundary and no request checks. It does
//! the work the template itself needs (the auth-events selection, the deepest extremities,
//! the reference hashes that room versions 1 and 2 put in event references) and prints the
//! same canonical JSON.

use matrix_leave::auth;
use matrix_leave::event;
use matrix_leave::json::{self, Object, Value};
use matrix_leave::keys;

use crate::world::{Room, RESIDENT, USER};

pub fn bare_template(room: &Room, counter: &mut u64) -> Vec<u8> {
    let v = room.version;
    let membership = room
        .state_id("m.room.member", USER)
        .and_then(|id| room.events[id].get("content"))
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str)
        .unwrap_or("leave");
    assert!(matches!(membership, "join" | "invite" | "knock"));
    let mut ext: Vec<(&str, i64)> = room
        .extremities
        .iter()
        .map(|(id, d)| (id.as_str(), *d))
        .collect();
    ext.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ext.truncate(20);
    let depth = ext.iter().map(|e| e.1).max().unwrap_or(0) + 1;
    let reference = |id: &str| -> Value {
        if v.event_refs_are_pairs() {
            let hash = event::reference_hash(&room.events[id], v).unwrap();
            Value::Array(vec![
                Value::from(id),
                json::object([("sha256", Value::String(keys::b64_encode(&hash)))]),
            ])
        } else {
            Value::from(id)
        }
    };
    let auth_refs: Vec<Value> = auth::leave_auth_selection(USER, USER, v)
        .iter()
        .filter_map(|(ty, sk)| room.state_id(ty, sk))
        .map(|id| reference(id))
        .collect();
    let prev_refs: Vec<Value> = ext.iter().map(|(id, _)| reference(id)).collect();
    let mut ev = Object::new();
    ev.insert("type".into(), Value::from("m.room.member"));
    ev.insert("room_id".into(), Value::from(room.room_id.as_str()));
    ev.insert("sender".into(), Value::from(USER));
    ev.insert("state_key".into(), Value::from(USER));
    ev.insert(
        "content".into(),
        json::object([("membership", Value::from("leave"))]),
    );
    ev.insert("origin".into(), Value::from(RESIDENT));
    ev.insert("origin_server_ts".into(), Value::Int(crate::world::NOW_MS));
    ev.insert("depth".into(), Value::Int(depth));
    ev.insert("prev_events".into(), Value::Array(prev_refs));
    ev.insert("auth_events".into(), Value::Array(auth_refs));
    if !v.event_id_is_hash() {
        *counter += 1;
        let local = keys::b64url_encode(&counter.to_le_bytes());
        ev.insert(
            "event_id".into(),
            Value::String(format!("${local}:{RESIDENT}")),
        );
    }
    json::object([
        ("event", Value::Object(ev)),
        ("room_version", Value::from(v.id)),
    ])
    .to_canonical()
}
