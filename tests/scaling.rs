//! No input makes a call superlinear. Parsing (strict and lenient), canonical output and
//! send_leave are timed on inputs of 1, 8, 32 and 64 KiB of adversarial shapes: nesting to
//! the depth limit, many keys, long runs of escapes, many surrogate pairs, long numbers
//! (lenient rooms), and server ACLs with many `*`. The cost per byte at 64 KiB must stay
//! within 4 times the cost at 8 KiB (generous: this machine is shared and noisy, so each
//! figure is the minimum of several runs).
//!
//! One test in its own binary, so no other test competes for the CPU inside it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sync_host::{self, SyncHost};
use matrix_leave::json::{self, Mode, Value};
use matrix_leave::keys::ServerKey;
use matrix_leave::resident::{LogLevel, Resident, ResidentHost, ResidentOptions, SendLeaveApi};
use matrix_leave::version::RoomVersion;
use matrix_leave::{event, Error};

const SIZES: [usize; 4] = [1 << 10, 8 << 10, 32 << 10, 64 << 10];
const MAX_RATIO: f64 = 4.0;
/// Reported, not yet fixed in `src/`: a lenient number with a long run of zeros after the
/// point (`0.000…01`) is parsed in quadratic time (`lenient_float` in src/json.rs removes
/// leading zeros one `Vec::remove(0)` at a time). Each entry must still be superlinear;
/// remove it with the fix.
const KNOWN_SUPERLINEAR: &[&str] = &[];
const TRIALS: usize = 5;
/// Each trial repeats the operation for at least this long.
const TRIAL_TIME: Duration = Duration::from_millis(15);

/// Repeats `unit` to fill `size` bytes inside `open ... close`.
fn fill(open: &str, unit: &str, sep: &str, close: &str, size: usize) -> String {
    let mut s = String::from(open);
    let mut first = true;
    while s.len() + unit.len() + sep.len() + close.len() <= size {
        if !first {
            s.push_str(sep);
        }
        s.push_str(unit);
        first = false;
    }
    s.push_str(close);
    s
}

/// A JSON value of about `size` bytes with this shape.
fn shape(name: &str, size: usize) -> String {
    match name {
        // Arrays nested to just under the depth limit, repeated.
        "deep nesting" => {
            let unit = "[".repeat(250) + &"]".repeat(250);
            fill("[", &unit, ",", "]", size)
        }
        "deep objects" => {
            let unit = "{\"a\":".repeat(200) + "0" + &"}".repeat(200);
            fill("[", &unit, ",", "]", size)
        }
        "many keys" => {
            let mut s = String::from("{");
            let mut i = 0;
            while s.len() + 16 < size {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&format!("\"k{i:07}\":{i}"));
                i += 1;
            }
            s.push('}');
            s
        }
        "escapes" => fill("\"", "\\n\\t\\\"\\\\\\u0001\\/", "", "\"", size),
        "surrogate pairs" => fill("\"", "\\ud83d\\ude00", "", "\"", size),
        "raw unicode" => fill("\"", "\u{1F600}\u{2028}é", "", "\"", size),
        "many numbers" => fill("[", "-9007199254740991", ",", "]", size),
        // Lenient mode only (room versions 1 to 5).
        "long fraction" => {
            let mut s = String::from("0.");
            s.push_str(&"0".repeat(size.saturating_sub(3)));
            s.push('1');
            s
        }
        "long integer" => "1".repeat(size),
        "long float" => {
            let mut s = "1234567890".repeat(20);
            s.push('.');
            s.push_str(&"9".repeat(size.saturating_sub(s.len())));
            s
        }
        "many floats" => fill("[", "1.0000000000000002e-300", ",", "]", size),
        other => panic!("no shape {other}"),
    }
}

const STRICT_SHAPES: [&str; 7] = [
    "deep nesting",
    "deep objects",
    "many keys",
    "escapes",
    "surrogate pairs",
    "raw unicode",
    "many numbers",
];
const LENIENT_SHAPES: [&str; 4] = ["long fraction", "long integer", "long float", "many floats"];

/// Minimum over the trials of the time per byte, in nanoseconds.
fn ns_per_byte(bytes: usize, mut op: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..TRIALS {
        let start = Instant::now();
        let mut n = 0u32;
        while n == 0 || start.elapsed() < TRIAL_TIME {
            op();
            n += 1;
        }
        let per = start.elapsed().as_nanos() as f64 / (n as f64 * bytes as f64);
        best = best.min(per);
    }
    best
}

/// A v10 (or v1) leave whose content carries `extra` in `x`, as a send_leave body.
fn body_with(extra: &str, room_id: &str) -> Vec<u8> {
    format!(
        "{{\"auth_events\":[],\"content\":{{\"membership\":\"leave\",\"x\":{extra}}},\"depth\":7,\
         \"event_id\":\"$a:remote.example\",\"hashes\":{{\"sha256\":\"x\"}},\"origin_server_ts\":1,\
         \"prev_events\":[],\"room_id\":\"{room_id}\",\"sender\":\"@user:remote.example\",\
         \"signatures\":{{}},\"state_key\":\"@user:remote.example\",\"type\":\"m.room.member\"}}"
    )
    .into_bytes()
}

/// A host whose rooms have a server ACL with the given content.
struct AclHost {
    inner: SyncHost,
    acl: Value,
}

impl ResidentHost for AclHost {
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error> {
        self.inner.room_version(room_id)
    }
    fn state_event(&self, room_id: &str, ty: &str, sk: &str) -> Result<Option<Arc<Value>>, Error> {
        if ty == "m.room.server_acl" && sk.is_empty() {
            return Ok(Some(Arc::new(json::object([
                ("type", Value::from(ty)),
                ("state_key", Value::from("")),
                ("content", self.acl.clone()),
            ]))));
        }
        self.inner.state_event(room_id, ty, sk)
    }
    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error> {
        self.inner.event(room_id, event_id)
    }
    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error> {
        self.inner.forward_extremities(room_id)
    }
    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error> {
        self.inner.servers_in_room(room_id)
    }
    fn server_keys(&self, server: &str) -> Result<Vec<ServerKey>, Error> {
        self.inner.server_keys(server)
    }
    fn store_event(&self, room_id: &str, id: &str, ev: &Value, soft: bool) -> Result<(), Error> {
        self.inner.store_event(room_id, id, ev, soft)
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message)
    }
}

/// ACL contents of about `size` bytes that make glob matching work hard for a long origin.
fn acl_shape(name: &str, size: usize) -> Value {
    let text = match name {
        // One pattern of many stars that fails only at its end.
        "acl one starry glob" => {
            let mut p = "*a".repeat(size / 2 - 4);
            p.push_str("*b");
            format!("{{\"allow\":[\"{p}\"],\"deny\":[]}}")
        }
        // Many patterns, each of many stars.
        "acl many starry globs" => {
            let unit = format!("\"{}b\"", "*a".repeat(30));
            format!(
                "{{\"allow\":{},\"deny\":[]}}",
                fill("[", &unit, ",", "]", size - 20)
            )
        }
        other => panic!("no ACL shape {other}"),
    };
    Value::parse(text.as_bytes(), Mode::Strict).unwrap()
}

#[test]
fn cost_per_byte_stays_flat_from_8_to_64_kib() {
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let v10 = sync_host::room_id("v10/joined");
    let v1 = sync_host::room_id("v1/joined");
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();

    let mut measure = |label: String, per_size: &mut dyn FnMut(usize) -> f64| {
        let costs: Vec<f64> = SIZES.iter().map(|&s| per_size(s)).collect();
        rows.push((label, costs));
    };

    for (shapes, mode, room) in [
        (&STRICT_SHAPES[..], Mode::Strict, &v10),
        (&LENIENT_SHAPES[..], Mode::Lenient, &v1),
    ] {
        for name in shapes {
            measure(format!("parse {mode:?} {name}"), &mut |size| {
                let text = shape(name, size);
                Value::parse(text.as_bytes(), mode).expect(name);
                ns_per_byte(text.len(), || {
                    std::hint::black_box(Value::parse(text.as_bytes(), mode).unwrap());
                })
            });
            measure(format!("canonical {mode:?} {name}"), &mut |size| {
                let text = shape(name, size);
                let v = Value::parse(text.as_bytes(), mode).unwrap();
                ns_per_byte(text.len(), || {
                    std::hint::black_box(v.to_canonical());
                })
            });
            measure(format!("send_leave {mode:?} {name}"), &mut |size| {
                let inner = shape(name, size.saturating_sub(400).max(16));
                let body = body_with(&inner, room);
                let host = SyncHost::new();
                let r = resident.send_leave(
                    &host,
                    room,
                    "$x",
                    &body,
                    "remote.example",
                    SendLeaveApi::V2,
                );
                assert_eq!(r.status, 400, "{name}: {:?}", r.error);
                ns_per_byte(body.len(), || {
                    std::hint::black_box(resident.send_leave(
                        &host,
                        room,
                        "$x",
                        &body,
                        "remote.example",
                        SendLeaveApi::V2,
                    ));
                })
            });
        }
    }
    // Server ACLs: a long origin against globs of many stars, through make_leave and
    // send_leave (both check the ACL before anything that needs a signature).
    let origin = "a".repeat(200) + ".example";
    let user = format!("@u:{origin}");
    let leave = Value::parse(&body_with("0", &v10), Mode::Strict).unwrap();
    let mut leave = leave;
    for k in ["sender", "state_key"] {
        leave
            .as_object_mut()
            .unwrap()
            .insert(k.into(), Value::from(user.as_str()));
    }
    leave.as_object_mut().unwrap().remove("event_id");
    let leave_id = event::event_id(&leave, RoomVersion::get("10").unwrap()).unwrap();
    let leave_body = leave.to_canonical();
    for name in ["acl one starry glob", "acl many starry globs"] {
        let host_for = |size| AclHost {
            inner: SyncHost::new(),
            acl: acl_shape(name, size),
        };
        measure(format!("make_leave {name}"), &mut |size| {
            let host = host_for(size);
            let r = resident.make_leave(&host, &v10, &user, &origin);
            assert_eq!(r.status, 403, "{:?}", r.error);
            ns_per_byte(size, || {
                std::hint::black_box(resident.make_leave(&host, &v10, &user, &origin));
            })
        });
        measure(format!("send_leave {name}"), &mut |size| {
            let host = host_for(size);
            let send = || {
                resident.send_leave(
                    &host,
                    &v10,
                    &leave_id,
                    &leave_body,
                    &origin,
                    SendLeaveApi::V2,
                )
            };
            let r = send();
            assert_eq!(r.status, 403, "{:?}", r.error);
            ns_per_byte(size, || {
                std::hint::black_box(send());
            })
        });
    }

    let mut failures = Vec::new();
    println!("scaling: ns per byte at 1, 8, 32, 64 KiB (minimum of {TRIALS} runs)");
    for (label, c) in &rows {
        let ratio = c[3] / c[1];
        println!(
            "  {label:<42} {:>8.3} {:>8.3} {:>8.3} {:>8.3}   64/8 KiB: {ratio:.2}x",
            c[0], c[1], c[2], c[3]
        );
        let known = KNOWN_SUPERLINEAR.contains(&label.as_str());
        if ratio > MAX_RATIO && !known {
            failures.push(format!("{label}: {ratio:.1}x the cost per byte at 64 KiB"));
        }
        // A fix brings the ratio near 1; noise alone does not take a quadratic below 2.
        if known && ratio < 2.0 {
            failures.push(format!(
                "{label} is no longer superlinear ({ratio:.1}x): remove it from KNOWN_SUPERLINEAR"
            ));
        }
    }
    assert!(failures.is_empty(), "superlinear:\n{}", failures.join("\n"));
}
