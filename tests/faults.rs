//! Failing hosts. Every host method fails in turn at every call site of make_leave and
//! send_leave (the nth call of the method, for every n a clean run makes), in every way it
//! can: through the Rust trait it returns an error or is slow; through the C ABI (the
//! exported `mxl_resident_*` functions, called from Rust with `extern "C"` callbacks) it
//! also returns other status codes, answers OK without an answer, or answers malformed data.
//!
//! Each time: the answer is `500 M_UNKNOWN` (or, where the C API documents another code,
//! that code), a slow host changes nothing but the time, nothing is stored unless the answer
//! is a 200, and the next call, without the fault, works.
//!
//! Violations are collected and compared with `KNOWN`, the reported bugs not yet fixed in
//! `src/`: a new violation fails the test, and so does a known one that no longer happens
//! (remove it from the list with its fix).

mod common;

use std::collections::BTreeSet;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::sync_host::{self, Fault, FaultKind, Method, SendCase, SyncHost};
use matrix_leave::ffi::resident::*;
use matrix_leave::ffi::{mxl_bytes_data, mxl_bytes_free, mxl_bytes_len};
use matrix_leave::json::{Mode, Value};
use matrix_leave::resident::{
    percent_decode, Resident, ResidentHost, ResidentOptions, Response, SendLeaveApi,
};
use matrix_leave::version::RoomVersion;
use matrix_leave::Code;

const SLOW: Duration = Duration::from_millis(50);

/// Reported bugs not yet fixed in `src/`: a violation line that contains every part of an
/// entry is known. Each entry must still match a violation, so remove it with its fix.
const KNOWN: &[&[&str]] = &[];

// ---- requests ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Call {
    Make {
        room_id: String,
        user_id: String,
        origin: String,
    },
    Send(SendCase, SendLeaveApi),
}

impl Call {
    fn name(&self) -> String {
        match self {
            Call::Make { room_id, .. } => format!("make_leave {room_id}"),
            Call::Send(c, api) => format!("send_leave {api:?} {}", c.name),
        }
    }

    fn room(&self) -> &'static RoomVersion {
        let id = match self {
            Call::Make { room_id, .. } => percent_decode(room_id, "roomId").unwrap(),
            Call::Send(c, _) => c.room_id.clone(),
        };
        sync_host::world().rooms[&id].version
    }
}

fn scenarios() -> Vec<Call> {
    let cases = sync_host::send_cases();
    let case = |name: &str| cases.iter().find(|c| c.name == name).unwrap().clone();
    let mut out = vec![];
    for name in [
        "v1_self_leave_prior_join",
        "v10_self_leave_prior_invite",
        "v12_self_leave_prior_join",
        "v7_tampered_reason_redacted",
    ] {
        out.push(Call::Send(case(name), SendLeaveApi::V2));
    }
    out.push(Call::Send(
        case("v11_self_leave_prior_knock"),
        SendLeaveApi::V1,
    ));
    // A refusal: the auth rules reject it after every lookup.
    out.push(Call::Send(
        case("v11_self_leave_prior_leave"),
        SendLeaveApi::V2,
    ));
    for room in ["v1/joined", "v10/joined", "v12/joined"] {
        out.push(Call::Make {
            room_id: sync_host::room_id(room),
            user_id: "@user:remote.example".into(),
            origin: "remote.example".into(),
        });
    }
    out
}

/// An answer, reduced to what must match between runs.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    status: u16,
    errcode: String,
    /// The body, unless it holds a random event ID (v1/v2 templates).
    body: Option<Vec<u8>>,
    duplicate: Option<bool>,
}

impl Outcome {
    fn short(&self) -> String {
        match self.duplicate {
            Some(true) => format!("{} {} duplicate", self.status, self.errcode),
            _ => format!("{} {}", self.status, self.errcode),
        }
        .trim()
        .to_string()
    }
}

fn outcome(call: &Call, status: u16, errcode: &str, body: &[u8], dup: Option<bool>) -> Outcome {
    let random =
        matches!(call, Call::Make { .. }) && status == 200 && !call.room().event_id_is_hash();
    Outcome {
        status,
        errcode: errcode.to_string(),
        body: (!random).then(|| body.to_vec()),
        duplicate: dup,
    }
}

fn from_response(call: &Call, r: &Response) -> Outcome {
    let errcode = r.error.as_ref().map(|e| e.errcode()).unwrap_or("");
    outcome(
        call,
        r.status,
        errcode,
        &r.body,
        r.accepted.as_ref().map(|a| a.duplicate),
    )
}

// ---- checks shared by both APIs -----------------------------------------------------------

struct Checker {
    violations: Vec<String>,
    runs: usize,
}

impl Checker {
    fn flag(&mut self, call: &Call, fault: &str, problem: String) {
        self.violations
            .push(format!("{} | {fault} | {problem}", call.name()));
    }

    /// Judges one faulty run: `got` with `stored` store calls, then `next`, the same request
    /// again without the fault. `allowed` are the acceptable refusals besides
    /// `500 M_UNKNOWN`.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        call: &Call,
        fault: &str,
        clean: &Outcome,
        got: &Outcome,
        stored: usize,
        next: &Outcome,
        slow: bool,
        allowed: &[(u16, &str)],
    ) {
        self.runs += 1;
        if slow {
            if got != clean {
                self.flag(
                    call,
                    fault,
                    format!("a slow host changed the answer to {}", got.short()),
                );
            }
        } else if got.status == 200 {
            self.flag(
                call,
                fault,
                format!("answered {} despite the failure", got.short()),
            );
        } else if (got.status, got.errcode.as_str()) != (500, "M_UNKNOWN")
            && !allowed.contains(&(got.status, got.errcode.as_str()))
        {
            self.flag(
                call,
                fault,
                format!("answered {}, not 500 M_UNKNOWN", got.short()),
            );
        }
        if got.status != 200 && stored != 0 {
            self.flag(
                call,
                fault,
                format!("stored {stored} event(s) but answered {}", got.short()),
            );
        }
        if got.status == 200 && got.duplicate == Some(false) && stored != 1 {
            self.flag(call, fault, format!("answered as stored, {stored} stores"));
        }
        // The next call works: the clean answer, or a duplicate of what got stored.
        let ok = next == clean
            || (stored > 0
                && next.status == 200
                && next.duplicate == Some(true)
                && clean.status == 200);
        if !ok {
            self.flag(
                call,
                fault,
                format!(
                    "the next call answered {}, not {}",
                    next.short(),
                    clean.short()
                ),
            );
        }
    }
}

// ---- the Rust trait -----------------------------------------------------------------------

fn run_rust(resident: &Resident, host: &SyncHost, call: &Call) -> Outcome {
    let r = match call {
        Call::Make {
            room_id,
            user_id,
            origin,
        } => resident.make_leave(host, room_id, user_id, origin),
        Call::Send(c, api) => resident.send_leave(
            host,
            &c.path_room_id,
            &c.path_event_id,
            &c.body,
            &c.origin,
            *api,
        ),
    };
    if r.status != 200 {
        assert!(r.accepted.is_none());
    }
    from_response(call, &r)
}

#[test]
fn rust_host_fails_at_every_call_site() {
    let resident = Resident::new("resident.example", ResidentOptions::default());
    let mut checker = Checker {
        violations: vec![],
        runs: 0,
    };
    for call in scenarios() {
        let host = SyncHost::new();
        let clean = run_rust(&resident, &host, &call);
        let counts: Vec<(Method, usize)> =
            Method::ALL.iter().map(|m| (*m, host.calls(*m))).collect();
        if let Call::Send(c, _) = &call {
            let want = if c.name.ends_with("prior_leave") {
                400..500
            } else {
                200..201
            };
            assert!(
                want.contains(&clean.status),
                "{}: clean run {clean:?}",
                call.name()
            );
        } else {
            assert_eq!(clean.status, 200, "{}", call.name());
        }
        for (method, n) in counts {
            for nth in 1..=n {
                let kinds: &[FaultKind] = if method.fallible() {
                    &[FaultKind::Error, FaultKind::Slow(SLOW)]
                } else {
                    &[FaultKind::Slow(SLOW)]
                };
                for &kind in kinds {
                    let host = SyncHost::new();
                    host.inject(Some(Fault { method, nth, kind }));
                    let got = run_rust(&resident, &host, &call);
                    assert_eq!(
                        host.fired.load(Ordering::SeqCst),
                        1,
                        "{method:?} #{nth} did not fire"
                    );
                    let stored = host.store_count();
                    host.inject(None);
                    let next = run_rust(&resident, &host, &call);
                    let slow = matches!(kind, FaultKind::Slow(_));
                    let fault = format!(
                        "rust {method:?}#{nth} {}",
                        if slow { "slow" } else { "error" }
                    );
                    checker.judge(&call, &fault, &clean, &got, stored, &next, slow, &[]);
                }
            }
        }
    }
    checker.finish_for("rust");
}

impl Checker {
    fn finish_for(mut self, api: &str) {
        let tag = format!("| {api} ");
        self.violations.retain(|v| v.contains(&tag));
        let found: BTreeSet<String> = self.violations.iter().cloned().collect();
        let known: Vec<&[&str]> = KNOWN
            .iter()
            .copied()
            .filter(|k| k.iter().any(|part| part.contains(&tag)))
            .collect();
        let is_known = |v: &str| known.iter().any(|k| k.iter().all(|part| v.contains(part)));
        let new: Vec<&String> = found.iter().filter(|v| !is_known(v)).collect();
        let gone: Vec<String> = known
            .iter()
            .filter(|k| !found.iter().any(|v| k.iter().all(|part| v.contains(part))))
            .map(|k| k.join(" ... "))
            .collect();
        println!(
            "{api}: {} faulty runs, {} violations ({} of reported bugs)",
            self.runs,
            found.len(),
            found.len() - new.len()
        );
        for v in &new {
            println!("  {v}");
        }
        assert!(
            new.is_empty() && gone.is_empty(),
            "new violations:\n{}\nknown violations that no longer happen (remove them from KNOWN):\n{}",
            new.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            gone.join("\n"),
        );
    }
}

// ---- the C ABI ----------------------------------------------------------------------------

/// How a C callback misbehaves.
#[derive(Clone, Debug, PartialEq)]
enum CFault {
    /// Returns `MXL_CB_ERROR`.
    Error,
    /// Returns a status the API does not define.
    Status(i32),
    /// Returns `MXL_CB_OK` without calling `mxl_out_set`.
    OkWithoutAnswer,
    /// Answers these bytes.
    Answer(&'static [u8]),
    /// `now_ms` answers this.
    Clock(i64),
    /// Sleeps, then answers normally.
    Slow,
}

impl CFault {
    fn label(&self) -> String {
        match self {
            CFault::Error => "error".into(),
            CFault::Status(n) => format!("status {n}"),
            CFault::OkWithoutAnswer => "ok without an answer".into(),
            CFault::Answer(b) => format!("answers {:?}", String::from_utf8_lossy(b)),
            CFault::Clock(t) => format!("clock {t}"),
            CFault::Slow => "slow".into(),
        }
    }
}

/// The misbehaviours tried for a callback, with the refusals the API documents for them
/// besides `500 M_UNKNOWN`.
fn c_faults(m: Method) -> Vec<(CFault, Vec<(u16, &'static str)>)> {
    let none = Vec::new;
    let mut out = vec![(CFault::Slow, none())];
    let lookup_common = || {
        vec![
            (CFault::Error, none()),
            (CFault::Status(7), none()),
            (CFault::Status(-1), none()),
            (CFault::OkWithoutAnswer, none()),
            (CFault::Answer(b"\xff\xfe"), none()),
        ]
    };
    match m {
        Method::RoomVersion => {
            out.extend(lookup_common());
            out.push((
                CFault::Answer(b"99"),
                vec![(400, "M_UNSUPPORTED_ROOM_VERSION")],
            ));
            out.push((
                CFault::Answer(b""),
                vec![(400, "M_UNSUPPORTED_ROOM_VERSION")],
            ));
        }
        Method::StateEvent | Method::Event => {
            out.extend(lookup_common());
            for bad in [&b"{\"type\":"[..], b"not json", b"null", b"42", b"[]"] {
                out.push((CFault::Answer(bad), none()));
            }
        }
        Method::ForwardExtremities => {
            out.extend(lookup_common());
            for bad in [
                &b"[[\"$a\",1"[..],
                b"{}",
                b"[[1,2]]",
                b"[\"$a\"]",
                b"null",
                b"[]",
            ] {
                out.push((CFault::Answer(bad), none()));
            }
        }
        Method::ServersInRoom => {
            out.extend(lookup_common());
            for bad in [&b"[\"a\""[..], b"{}", b"[1]", b"null"] {
                out.push((CFault::Answer(bad), none()));
            }
        }
        Method::ServerKeys => {
            out.extend(lookup_common());
            for bad in [
                &b"{\"ed25519:1\":"[..],
                b"[]",
                b"{\"ed25519:1\":5}",
                b"{\"ed25519:1\":\"!!!\"}",
                b"{\"ed25519:1\":{\"valid_until_ts\":1}}",
                b"null",
            ] {
                out.push((CFault::Answer(bad), none()));
            }
        }
        Method::StoreEvent => {
            out.push((CFault::Error, none()));
            out.push((CFault::Status(7), none()));
        }
        Method::NowMs => {
            out.push((CFault::Clock(-1), none()));
            out.push((CFault::Clock(i64::MAX), none()));
        }
        Method::Log => {}
    }
    out
}

/// The state behind the C callbacks' `userdata`.
struct CState {
    host: SyncHost,
    fault: Mutex<Option<(Method, usize, CFault)>>,
    calls: [AtomicUsize; 9],
    fired: AtomicUsize,
}

impl CState {
    fn count(&self, m: Method) -> usize {
        let i = Method::ALL.iter().position(|x| *x == m).unwrap();
        self.calls[i].fetch_add(1, Ordering::SeqCst) + 1
    }

    fn calls(&self, m: Method) -> usize {
        let i = Method::ALL.iter().position(|x| *x == m).unwrap();
        self.calls[i].load(Ordering::SeqCst)
    }

    /// The fault for this call of `m`, if it is the one to fail.
    fn fault_now(&self, m: Method) -> Option<CFault> {
        let n = self.count(m);
        let f = self.fault.lock().unwrap().clone();
        match f {
            Some((fm, nth, kind)) if fm == m && nth == n => {
                self.fired.fetch_add(1, Ordering::SeqCst);
                if kind == CFault::Slow {
                    std::thread::sleep(SLOW);
                    None
                } else {
                    Some(kind)
                }
            }
            _ => None,
        }
    }
}

unsafe fn state<'a>(userdata: *mut c_void) -> &'a CState {
    // SAFETY: the test passes a pointer to a CState that outlives the context.
    unsafe { &*(userdata as *const CState) }
}

unsafe fn text<'a>(p: *const c_char) -> &'a str {
    // SAFETY: the library passes NUL-terminated strings valid for the callback.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

/// Answers a lookup: applies the fault, or writes `normal()` (None is NOT_FOUND).
unsafe fn respond(
    st: &CState,
    m: Method,
    out: *mut mxl_out,
    normal: impl FnOnce() -> Result<Option<Vec<u8>>, ()>,
) -> i32 {
    match st.fault_now(m) {
        Some(CFault::Error) => return MXL_CB_ERROR,
        Some(CFault::Status(n)) => return n,
        Some(CFault::OkWithoutAnswer) => return MXL_CB_OK,
        Some(CFault::Answer(bytes)) => {
            // SAFETY: `out` is the library's, for this callback.
            unsafe { mxl_out_set(out, bytes.as_ptr(), bytes.len()) };
            return MXL_CB_OK;
        }
        Some(CFault::Clock(_) | CFault::Slow) | None => {}
    }
    match normal() {
        Ok(Some(bytes)) => {
            // SAFETY: as above.
            unsafe { mxl_out_set(out, bytes.as_ptr(), bytes.len()) };
            MXL_CB_OK
        }
        Ok(None) => MXL_CB_NOT_FOUND,
        Err(()) => MXL_CB_ERROR,
    }
}

fn json_bytes(v: &Value) -> Vec<u8> {
    v.to_canonical()
}

unsafe extern "C" fn cb_room_version(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    let st = unsafe { state(ud) };
    let room = unsafe { text((*q).room_id) };
    unsafe {
        respond(st, Method::RoomVersion, out, || {
            Ok(st
                .host
                .room_version(room)
                .map_err(|_| ())?
                .map(String::into_bytes))
        })
    }
}

unsafe extern "C" fn cb_state_event(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    let st = unsafe { state(ud) };
    let (room, ty, sk) = unsafe {
        (
            text((*q).room_id),
            text((*q).event_type),
            text((*q).state_key),
        )
    };
    unsafe {
        respond(st, Method::StateEvent, out, || {
            Ok(st
                .host
                .state_event(room, ty, sk)
                .map_err(|_| ())?
                .as_deref()
                .map(json_bytes))
        })
    }
}

unsafe extern "C" fn cb_get_event(ud: *mut c_void, q: *const mxl_lookup, out: *mut mxl_out) -> i32 {
    let st = unsafe { state(ud) };
    let (room, id) = unsafe { (text((*q).room_id), text((*q).event_id)) };
    unsafe {
        respond(st, Method::Event, out, || {
            Ok(st
                .host
                .event(room, id)
                .map_err(|_| ())?
                .as_deref()
                .map(json_bytes))
        })
    }
}

unsafe extern "C" fn cb_forward_extremities(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    let st = unsafe { state(ud) };
    let room = unsafe { text((*q).room_id) };
    unsafe {
        respond(st, Method::ForwardExtremities, out, || {
            let ex = st.host.forward_extremities(room).map_err(|_| ())?;
            let arr = ex
                .into_iter()
                .map(|(id, d)| Value::Array(vec![Value::from(id), Value::Int(d)]))
                .collect();
            Ok(Some(json_bytes(&Value::Array(arr))))
        })
    }
}

unsafe extern "C" fn cb_servers_in_room(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    let st = unsafe { state(ud) };
    let room = unsafe { text((*q).room_id) };
    unsafe {
        respond(st, Method::ServersInRoom, out, || {
            let s = st.host.servers_in_room(room).map_err(|_| ())?;
            Ok(Some(json_bytes(&Value::Array(
                s.into_iter().map(Value::from).collect(),
            ))))
        })
    }
}

unsafe extern "C" fn cb_server_keys(
    ud: *mut c_void,
    q: *const mxl_lookup,
    out: *mut mxl_out,
) -> i32 {
    let st = unsafe { state(ud) };
    let server = unsafe { text((*q).server_name) };
    unsafe {
        respond(st, Method::ServerKeys, out, || {
            let keys = st.host.server_keys(server).map_err(|_| ())?;
            if keys.is_empty() {
                return Ok(None);
            }
            let mut obj = matrix_leave::json::Object::new();
            for k in keys {
                obj.insert(
                    k.key_id.clone(),
                    matrix_leave::json::object([("key", Value::from(k.key.to_b64()))]),
                );
            }
            Ok(Some(json_bytes(&Value::Object(obj))))
        })
    }
}

unsafe extern "C" fn cb_store_event(ud: *mut c_void, p: *const mxl_store) -> i32 {
    let st = unsafe { state(ud) };
    match st.fault_now(Method::StoreEvent) {
        Some(CFault::Error) => return MXL_CB_ERROR,
        Some(CFault::Status(n)) => return n,
        _ => {}
    }
    let p = unsafe { &*p };
    let (room, id) = unsafe { (text(p.room_id), text(p.event_id)) };
    // SAFETY: the library passes event_json_len bytes at event_json.
    let bytes = unsafe { std::slice::from_raw_parts(p.event_json, p.event_json_len) };
    let ev = Value::parse(bytes, Mode::Lenient).unwrap();
    match st.host.store_event(room, id, &ev, p.soft_failed) {
        Ok(()) => MXL_CB_OK,
        Err(_) => MXL_CB_ERROR,
    }
}

unsafe extern "C" fn cb_now_ms(ud: *mut c_void) -> i64 {
    let st = unsafe { state(ud) };
    match st.fault_now(Method::NowMs) {
        Some(CFault::Clock(t)) => t,
        _ => st.host.now,
    }
}

unsafe extern "C" fn cb_log(ud: *mut c_void, _level: u32, _msg: *const c_char, _len: usize) {
    let st = unsafe { state(ud) };
    let _ = st.fault_now(Method::Log);
}

/// A resident context over a CState.
struct CContext {
    resident: *mut mxl_resident,
    state: Box<CState>,
}

impl CContext {
    fn new() -> CContext {
        let state = Box::new(CState {
            host: SyncHost::new(),
            fault: Mutex::new(None),
            calls: Default::default(),
            fired: AtomicUsize::new(0),
        });
        let callbacks = mxl_resident_callbacks {
            userdata: &*state as *const CState as *mut c_void,
            userdata_free: None,
            room_version: Some(cb_room_version),
            state_event: Some(cb_state_event),
            get_event: Some(cb_get_event),
            forward_extremities: Some(cb_forward_extremities),
            servers_in_room: Some(cb_servers_in_room),
            server_keys: Some(cb_server_keys),
            store_event: Some(cb_store_event),
            now_ms: Some(cb_now_ms),
            log: Some(cb_log),
        };
        let name = CString::new("resident.example").unwrap();
        let config = mxl_resident_config {
            server_name: name.as_ptr(),
            enable_v1: true,
            acl_allows_leave: false,
        };
        let mut resident = std::ptr::null_mut();
        let code =
            unsafe { mxl_resident_new(&config, &callbacks, &mut resident, std::ptr::null_mut()) };
        assert_eq!(code, Code::Ok);
        CContext { resident, state }
    }

    fn inject(&self, fault: Option<(Method, usize, CFault)>) {
        *self.state.fault.lock().unwrap() = fault;
        self.state.fired.store(0, Ordering::SeqCst);
        for c in &self.state.calls {
            c.store(0, Ordering::SeqCst);
        }
    }

    fn run(&self, call: &Call) -> Outcome {
        let mut resp: *mut mxl_response = std::ptr::null_mut();
        let code = match call {
            Call::Make {
                room_id,
                user_id,
                origin,
            } => {
                let (r, u, o) = (
                    CString::new(room_id.as_str()).unwrap(),
                    CString::new(user_id.as_str()).unwrap(),
                    CString::new(origin.as_str()).unwrap(),
                );
                unsafe {
                    mxl_resident_make_leave(
                        self.resident,
                        r.as_ptr(),
                        u.as_ptr(),
                        o.as_ptr(),
                        &mut resp,
                        std::ptr::null_mut(),
                    )
                }
            }
            Call::Send(c, api) => {
                let (r, e, o) = (
                    CString::new(c.path_room_id.as_str()).unwrap(),
                    CString::new(c.path_event_id.as_str()).unwrap(),
                    CString::new(c.origin.as_str()).unwrap(),
                );
                let params = mxl_send_leave_params {
                    room_id: r.as_ptr(),
                    event_id: e.as_ptr(),
                    body: c.body.as_ptr(),
                    body_len: c.body.len(),
                    origin: o.as_ptr(),
                    api_version: if *api == SendLeaveApi::V1 { 1 } else { 2 },
                };
                unsafe {
                    mxl_resident_send_leave(self.resident, &params, &mut resp, std::ptr::null_mut())
                }
            }
        };
        assert_eq!(code, Code::Ok, "the call itself failed");
        let out = unsafe {
            let status = mxl_response_status(resp);
            let errcode = CStr::from_ptr(mxl_response_errcode(resp))
                .to_str()
                .unwrap()
                .to_string();
            let mut len = 0;
            let body = std::slice::from_raw_parts(mxl_response_body(resp, &mut len), len).to_vec();
            let mut json = std::ptr::null_mut();
            assert_eq!(
                mxl_response_json(resp, &mut json, std::ptr::null_mut()),
                Code::Ok
            );
            let all = Value::parse(
                std::slice::from_raw_parts(mxl_bytes_data(json), mxl_bytes_len(json)),
                Mode::Lenient,
            )
            .unwrap();
            mxl_bytes_free(json);
            let dup = all
                .get("accepted")
                .and_then(|a| a.get("duplicate"))
                .and_then(|d| match d {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                });
            assert_eq!(mxl_response_accepted(resp), dup.is_some());
            mxl_response_free(resp);
            outcome(call, status, &errcode, &body, dup)
        };
        out
    }
}

impl Drop for CContext {
    fn drop(&mut self) {
        unsafe { mxl_resident_free(self.resident) };
    }
}

#[test]
fn c_callbacks_fail_at_every_call_site() {
    let mut checker = Checker {
        violations: vec![],
        runs: 0,
    };
    for call in scenarios() {
        let ctx = CContext::new();
        let clean = ctx.run(&call);
        // The C adapter answers like the Rust host.
        let rust = run_rust(
            &Resident::new("resident.example", ResidentOptions::default()),
            &SyncHost::new(),
            &call,
        );
        assert_eq!(
            clean,
            rust,
            "{}: the C ABI and the Rust API differ",
            call.name()
        );
        let counts: Vec<(Method, usize)> = Method::ALL
            .iter()
            .map(|m| (*m, ctx.state.calls(*m)))
            .collect();
        for (method, n) in counts {
            for nth in 1..=n {
                for (fault, allowed) in c_faults(method) {
                    let ctx = CContext::new();
                    ctx.inject(Some((method, nth, fault.clone())));
                    let got = ctx.run(&call);
                    assert_eq!(ctx.state.fired.load(Ordering::SeqCst), 1);
                    let stored = ctx.state.host.store_count();
                    ctx.inject(None);
                    let next = ctx.run(&call);
                    let label = format!("c {method:?}#{nth} {}", fault.label());
                    if let CFault::Clock(_) = fault {
                        // A nonsense clock is no failure: the answer must still be usable
                        // (a template's integers stay within canonical JSON's range).
                        checker.runs += 1;
                        if got.status == 200 {
                            if let Some(body) = &got.body {
                                if Value::parse(body, Mode::Strict).is_err() {
                                    checker.flag(
                                        &call,
                                        &label,
                                        "the template is not canonical JSON".into(),
                                    );
                                }
                            }
                        }
                        continue;
                    }
                    let slow = fault == CFault::Slow;
                    checker.judge(&call, &label, &clean, &got, stored, &next, slow, &allowed);
                }
            }
        }
    }
    checker.finish_for("c");
}
