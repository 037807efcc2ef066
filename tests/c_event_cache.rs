//! The C ABI keeps the events its callbacks return parsed, and must still see every change a
//! host makes: an event is reused only when the host hands over the same bytes again.
//!
//! The callbacks here answer from a [`MemoryHost`] with its events as canonical JSON, and the
//! room's state changes between requests.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use common::host::MemoryHost;
use common::load;
use matrix_leave::ffi::resident::*;
use matrix_leave::json::{self, Value};
use matrix_leave::resident::ResidentHost;
use matrix_leave::version::RoomVersion;

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller promises for `alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as the caller promises for `dealloc`.
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as the caller promises for `realloc`.
        unsafe { System.realloc(p, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The tests of this file one at a time, so that one's allocations do not show in another's
/// count.
static SERIAL: Mutex<()> = Mutex::new(());

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// # Safety
/// `ud` is the `MemoryHost` given to `mxl_resident_new`; `q` and `out` come from the library.
unsafe fn answer(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
    f: impl FnOnce(&MemoryHost, &mxl_lookup) -> Option<Vec<u8>>,
) -> i32 {
    // SAFETY: as the caller promises.
    let (host, q) = unsafe { (&*(ud as *const MemoryHost), &*q) };
    match f(host, q) {
        Some(bytes) => {
            // SAFETY: `out` is the callback's output slot.
            unsafe { mxl_out_set(out, bytes.as_ptr(), bytes.len()) };
            MXL_CB_OK
        }
        None => MXL_CB_NOT_FOUND,
    }
}

unsafe extern "C" fn room_version(ud: *mut c_void, q: *const mxl_lookup, o: *mut mxl_out) -> i32 {
    // SAFETY: pointers from the library, valid for the call.
    unsafe {
        answer(ud, q, o, |h, q| {
            h.room_version(text(q.room_id))
                .unwrap()
                .map(String::into_bytes)
        })
    }
}

unsafe extern "C" fn state_event(ud: *mut c_void, q: *const mxl_lookup, o: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        answer(ud, q, o, |h, q| {
            h.state_event(text(q.room_id), text(q.event_type), text(q.state_key))
                .unwrap()
                .map(|e| e.to_canonical())
        })
    }
}

unsafe extern "C" fn get_event(ud: *mut c_void, q: *const mxl_lookup, o: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        answer(ud, q, o, |h, q| {
            h.event(text(q.room_id), text(q.event_id))
                .unwrap()
                .map(|e| e.to_canonical())
        })
    }
}

unsafe extern "C" fn extremities(ud: *mut c_void, q: *const mxl_lookup, o: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        answer(ud, q, o, |h, q| {
            let list = h.forward_extremities(text(q.room_id)).unwrap();
            let arr = list
                .into_iter()
                .map(|(id, d)| Value::Array(vec![Value::String(id), Value::Int(d)]))
                .collect();
            Some(Value::Array(arr).to_canonical())
        })
    }
}

unsafe extern "C" fn servers(ud: *mut c_void, q: *const mxl_lookup, o: *mut mxl_out) -> i32 {
    // SAFETY: as above.
    unsafe {
        answer(ud, q, o, |h, q| {
            let list = h.servers_in_room(text(q.room_id)).unwrap();
            Some(Value::Array(list.into_iter().map(Value::String).collect()).to_canonical())
        })
    }
}

unsafe extern "C" fn now(ud: *mut c_void) -> i64 {
    // SAFETY: `ud` is the MemoryHost.
    unsafe { (*(ud as *const MemoryHost)).now }
}

/// A resident context over `host`, which must outlive it.
fn c_resident(host: &MemoryHost) -> *mut mxl_resident {
    let callbacks = mxl_resident_callbacks {
        userdata: host as *const MemoryHost as *mut c_void,
        userdata_free: None,
        room_version: Some(room_version),
        state_event: Some(state_event),
        get_event: Some(get_event),
        forward_extremities: Some(extremities),
        servers_in_room: Some(servers),
        server_keys: None,
        store_event: None,
        now_ms: Some(now),
        log: None,
    };
    let name = CString::new("resident.example").unwrap();
    let config = mxl_resident_config {
        server_name: name.as_ptr(),
        enable_v1: true,
        acl_allows_leave: false,
    };
    let mut out = ptr::null_mut();
    // SAFETY: valid config and callbacks for the call.
    let code = unsafe { mxl_resident_new(&config, &callbacks, &mut out, ptr::null_mut()) };
    assert_eq!(code as u32, 0);
    out
}

/// make_leave through the C ABI: the status and the errcode ("" for a 200).
fn make_leave(r: *mut mxl_resident, room_id: &str, user_id: &str) -> (u16, String) {
    let (status, errcode, _) = make_leave_body(r, room_id, user_id);
    (status, errcode)
}

/// make_leave through the C ABI: the status, the errcode ("" for a 200) and the body.
fn make_leave_body(
    r: *mut mxl_resident,
    room_id: &str,
    user_id: &str,
) -> (u16, String, serde_json::Value) {
    let (room, user, origin) = (
        CString::new(room_id).unwrap(),
        CString::new(user_id).unwrap(),
        CString::new("remote.example").unwrap(),
    );
    let mut resp = ptr::null_mut();
    // SAFETY: valid strings and output slot for the call.
    unsafe {
        mxl_resident_make_leave(
            r,
            room.as_ptr(),
            user.as_ptr(),
            origin.as_ptr(),
            &mut resp,
            ptr::null_mut(),
        );
        let status = mxl_response_status(resp);
        let errcode = if status == 200 {
            String::new()
        } else {
            text(mxl_response_errcode(resp)).to_string()
        };
        let mut len = 0;
        let body = mxl_response_body(resp, &mut len);
        let body = serde_json::from_slice(std::slice::from_raw_parts(body, len)).unwrap();
        mxl_response_free(resp);
        (status, errcode, body)
    }
}

/// The event IDs a template lists in `auth_events`.
fn auth_ids(body: &serde_json::Value) -> Vec<String> {
    body["event"]["auth_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// A membership event of `user` in `room_id`, one deeper than the room's extremities.
fn membership(host: &MemoryHost, room_id: &str, user: &str, membership: &str, n: i64) -> Value {
    let extremities = host.forward_extremities(room_id).unwrap();
    let depth = extremities.iter().map(|e| e.1).max().unwrap() + 1;
    json::object([
        ("type", Value::from("m.room.member")),
        ("room_id", Value::from(room_id)),
        ("sender", Value::from(user)),
        ("state_key", Value::from(user)),
        (
            "content",
            json::object([("membership", Value::from(membership))]),
        ),
        ("origin_server_ts", Value::Int(1_700_000_000_000 + n)),
        ("depth", Value::Int(depth)),
        (
            "prev_events",
            Value::Array(
                extremities
                    .into_iter()
                    .map(|e| Value::String(e.0))
                    .collect(),
            ),
        ),
        ("auth_events", Value::Array(vec![])),
        ("hashes", json::object([])),
        ("signatures", json::object([])),
    ])
}

/// Changes a stored event in place, as a host that rewrites its copy would.
fn edit_event(host: &MemoryHost, room_id: &str, id: &str, f: impl FnOnce(&mut json::Object)) {
    let mut rooms = host.rooms.borrow_mut();
    let ev = rooms.get_mut(room_id).unwrap().events.get_mut(id).unwrap();
    f(ev.as_object_mut().unwrap());
}

/// The room version 10 ID of a stored event: `$` + its URL-safe reference hash.
fn id_of(host: &MemoryHost, room_id: &str, id: &str) -> String {
    let rooms = host.rooms.borrow();
    let ev = &rooms[room_id].events[id];
    matrix_leave::event::event_id(ev, RoomVersion::get("10").unwrap()).unwrap()
}

#[test]
fn a_changed_membership_is_seen_on_the_next_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = load("leave_auth.json");
    let room = &file["rooms"]["v10/joined"];
    let room_id = room["room_id"].as_str().unwrap();
    let user = "@user:remote.example";
    let mut host = MemoryHost::default();
    host.add_vector_room(room);
    host.now = 1_800_000_000_000;
    let r = c_resident(&host);

    // The same answers twice (the second from the parsed copy): a template both times.
    assert_eq!(make_leave(r, room_id, user), (200, String::new()));
    assert_eq!(make_leave(r, room_id, user), (200, String::new()));

    // The user leaves: the same query now has another answer, and the spec's make_leave
    // refuses a user who is not in the room with 403 M_FORBIDDEN.
    let left = membership(&host, room_id, user, "leave", 1);
    host.add_event(room_id, "10", "$left", left);
    assert_eq!(make_leave(r, room_id, user), (403, "M_FORBIDDEN".into()));
    assert_eq!(make_leave(r, room_id, user), (403, "M_FORBIDDEN".into()));

    // And is invited back: a template again.
    let invited = membership(&host, room_id, user, "invite", 2);
    host.add_event(room_id, "10", "$invited", invited);
    assert_eq!(make_leave(r, room_id, user), (200, String::new()));

    // The template's auth events name the invite by its reference-hash ID (room version 10).
    let (status, _, body) = make_leave_body(r, room_id, user);
    assert_eq!(status, 200);
    let invite_id = id_of(&host, room_id, "$invited");
    assert!(auth_ids(&body).contains(&invite_id), "{body}");

    // The invite's bytes change under the same query (another origin_server_ts, which the
    // reference hash covers): the template names the changed event, not the ID remembered
    // for the old bytes.
    edit_event(&host, room_id, "$invited", |ev| {
        ev.insert("origin_server_ts".into(), Value::Int(1_700_000_000_999));
    });
    let (status, _, body) = make_leave_body(r, room_id, user);
    assert_eq!(status, 200);
    let changed_id = id_of(&host, room_id, "$invited");
    assert_ne!(changed_id, invite_id);
    let ids = auth_ids(&body);
    assert!(
        ids.contains(&changed_id) && !ids.contains(&invite_id),
        "{body}"
    );

    // The host rewrites the stored membership event in place (say, redacted by an admin):
    // same event ID, same query, different bytes.
    edit_event(&host, room_id, "$invited", |ev| {
        ev.insert(
            "content".into(),
            json::object([("membership", Value::from("ban"))]),
        );
    });
    assert_eq!(make_leave(r, room_id, user), (403, "M_FORBIDDEN".into()));

    // SAFETY: the context from c_resident, freed once.
    unsafe { mxl_resident_free(r) };
    drop(host);
}

/// A joined member whose event's content carries `pad` copies of `{"": 0}`: little JSON, and
/// a parsed tree many times its size.
fn add_padded_member(host: &MemoryHost, room_id: &str, user: &str, pad: usize, n: i64) {
    let mut ev = membership(host, room_id, user, "join", n);
    let padding = Value::Array(vec![json::object([("", Value::Int(0))]); pad]);
    ev.as_object_mut()
        .unwrap()
        .get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("pad".into(), padding);
    host.add_event(room_id, "10", &format!("$pad{n}"), ev);
}

#[test]
fn parsed_events_kept_stay_within_their_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = load("leave_auth.json");
    let room = &file["rooms"]["v10/joined"];
    let room_id = room["room_id"].as_str().unwrap();
    let mut host = MemoryHost::default();
    host.add_vector_room(room);
    host.now = 1_800_000_000_000;
    // 300 members with 600 padding objects each (about 4 KiB of JSON, about 0.4 MiB parsed),
    // and 40 with 8000 (about 56 KiB of JSON, about 5 MiB parsed): unbounded, the parsed
    // trees would hold over 300 MiB.
    let users: Vec<(String, usize)> = (0..340)
        .map(|i| {
            (
                format!("@pad{i}:remote.example"),
                if i < 300 { 600 } else { 8000 },
            )
        })
        .collect();
    for (i, (user, pad)) in users.iter().enumerate() {
        add_padded_member(&host, room_id, user, *pad, i as i64);
    }
    let r = c_resident(&host);
    let before = LIVE.load(Ordering::Relaxed);
    for (user, _) in &users {
        assert_eq!(make_leave(r, room_id, user), (200, String::new()), "{user}");
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    // The documented bound is about 32 MiB; the weights it is counted in err high.
    assert!(held < 40 << 20, "the context holds {} MiB", held >> 20);
    // SAFETY: the context from c_resident, freed once.
    unsafe { mxl_resident_free(r) };
    drop(host);
}
