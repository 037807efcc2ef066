//! Bounded memory: 200,000 mixed make_leave and send_leave calls (good, bad, duplicate and
//! malformed requests) on one resident and host, with the peak resident set size
//! (`VmHWM` in /proc/self/status) read after a warm-up, halfway and at the end. The growth in
//! the second half must not exceed the first half's (plus a small allowance), and the total
//! growth after the warm-up must stay small: nothing accumulates per call.
//!
//! One test in its own binary, so no other test's allocations move the peak.

mod common;

use common::sync_host::{self, SyncHost};
use matrix_leave::resident::{Resident, ResidentOptions, SendLeaveApi};

const CALLS: usize = 200_000;
const WARM_UP: usize = 10_000;

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

enum Req {
    Make(String, String, String),
    Send(String, String, Vec<u8>, String, SendLeaveApi),
}

fn requests() -> Vec<Req> {
    let mut out = vec![];
    for c in sync_host::send_cases() {
        out.push(Req::Send(
            c.path_room_id.clone(),
            c.path_event_id.clone(),
            c.body.clone(),
            c.origin.clone(),
            SendLeaveApi::V2,
        ));
        // The same leave with a broken body, and with a body that is not JSON at all.
        let mut cut = c.body.clone();
        cut.truncate(cut.len() / 2);
        out.push(Req::Send(
            c.path_room_id.clone(),
            c.path_event_id.clone(),
            cut,
            c.origin.clone(),
            SendLeaveApi::V1,
        ));
    }
    out.push(Req::Send(
        sync_host::room_id("v10/joined"),
        "$x".into(),
        vec![b'['; 70_000],
        "remote.example".into(),
        SendLeaveApi::V2,
    ));
    let mut rooms: Vec<&String> = sync_host::world().rooms.keys().collect();
    rooms.sort();
    for room in rooms {
        out.push(Req::Make(
            room.clone(),
            "@user:remote.example".into(),
            "remote.example".into(),
        ));
        out.push(Req::Make(
            room.clone(),
            "@user:remote.example".into(),
            "other.example".into(),
        ));
    }
    out
}

#[test]
fn peak_memory_stays_flat_over_200k_calls() {
    if status_kib("VmHWM:").is_none() {
        eprintln!("no /proc/self/status here: skipped");
        return;
    }
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let host = SyncHost::new();
    let reqs = requests();
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut run = |n: usize| {
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = match &reqs[(state % reqs.len() as u64) as usize] {
                Req::Make(room, user, origin) => resident.make_leave(&host, room, user, origin),
                Req::Send(room, id, body, origin, api) => {
                    resident.send_leave(&host, room, id, body, origin, *api)
                }
            };
            assert!(r.status != 500, "{:?}", r.error);
        }
    };
    let start = std::time::Instant::now();
    let before = status_kib("VmHWM:").unwrap();
    run(WARM_UP);
    let warm = status_kib("VmHWM:").unwrap();
    let half = (CALLS - WARM_UP) / 2;
    run(half);
    let mid = status_kib("VmHWM:").unwrap();
    run(CALLS - WARM_UP - half);
    let end = status_kib("VmHWM:").unwrap();
    let rss = status_kib("VmRSS:").unwrap();
    let (first, second) = (mid - warm, end - mid);
    println!(
        "resources: {CALLS} calls in {:?}; VmHWM {before} KiB before, {warm} KiB after \
         {WARM_UP} warm-up calls, {mid} KiB halfway, {end} KiB at the end (growth {first} KiB \
         then {second} KiB); VmRSS {rss} KiB; {} leaves stored",
        start.elapsed(),
        host.store_count()
    );
    assert!(
        second <= first + 512,
        "the peak keeps growing: {first} KiB in the first half, {second} KiB in the second"
    );
    assert!(
        end - warm <= 8 * 1024,
        "the peak grew by {} KiB after the warm-up",
        end - warm
    );
}
