//! Every single-byte change to a good, signed leave, sent to send_leave with the path naming
//! the changed event's own ID: a change may be refused, or accepted as the same event (a
//! change outside what is signed, such as whitespace, `unsigned` or a signature's unused
//! trailing bits), but never accepted as another event. What is stored always verifies.
//! (The `send_leave` fuzz target checks the same on random inputs; this is the exhaustive
//! version for three room versions.)

mod common;

use common::sync_host::{self, SyncHost};
use matrix_leave::event;
use matrix_leave::json::Value;
use matrix_leave::resident::{Resident, ResidentOptions, SendLeaveApi};

#[test]
fn no_single_byte_change_gets_another_leave_accepted() {
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let cases = sync_host::send_cases();
    let world = sync_host::world();
    let mut tried = 0;
    let mut accepted_same = 0;
    let mut failures = vec![];
    for name in [
        "v1_self_leave_prior_join",
        "v10_self_leave_prior_invite",
        "v12_self_leave_prior_join",
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let version = world.rooms[&case.room_id].version;
        let good = resident.send_leave(
            &SyncHost::new(),
            &case.path_room_id,
            &case.path_event_id,
            &case.body,
            &case.origin,
            SendLeaveApi::V2,
        );
        assert_eq!(good.status, 200, "{name}: {:?}", good.error);
        for pos in 0..case.body.len() {
            // Three bit flips, and the next byte value (which, on a signature's last
            // character, can leave the decoded signature unchanged).
            for change in [0x01u8, 0x20, 0x80, 0] {
                let mut body = case.body.clone();
                body[pos] = if change == 0 {
                    body[pos].wrapping_add(1)
                } else {
                    body[pos] ^ change
                };
                // The path names the changed event's own ID, so the ID check passes.
                let path_id = Value::parse(&body, version.json_mode())
                    .ok()
                    .and_then(|v| {
                        if version.event_id_is_hash() {
                            event::event_id(&v, version).ok()
                        } else {
                            v.get("event_id")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        }
                    })
                    .unwrap_or_else(|| case.path_event_id.clone());
                let host = SyncHost::new();
                let r = resident.send_leave(
                    &host,
                    &case.path_room_id,
                    &path_id,
                    &body,
                    &case.origin,
                    SendLeaveApi::V2,
                );
                tried += 1;
                if r.status != 200 {
                    if host.store_count() != 0 {
                        failures.push(format!(
                            "{name} byte {pos} ^ {change:#x}: refused but stored"
                        ));
                    }
                    continue;
                }
                let acc = r.accepted.unwrap();
                if acc.event_id != case.path_event_id {
                    failures.push(format!(
                        "{name} byte {pos} ^ {change:#x}: accepted as {}",
                        acc.event_id
                    ));
                    continue;
                }
                accepted_same += 1;
                let check = event::verify_event(&acc.event, version, &mut |s| {
                    Ok(world.keys.get(s).cloned().unwrap_or_default())
                })
                .unwrap();
                if !check.signature_valid {
                    failures.push(format!(
                        "{name} byte {pos} ^ {change:#x}: stored unverifiable"
                    ));
                }
            }
        }
    }
    println!(
        "mutations: {tried} single-byte changes sent, {accepted_same} accepted as the same leave"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
