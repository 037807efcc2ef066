//! C ABI of the leaving side: completing a template, and the handshake driver over a host
//! transport.

#![expect(
    non_camel_case_types,
    reason = "C type names follow the mxl_ naming of the ABI"
)]

use std::ffi::{c_char, c_void, CString};

use super::crypto::mxl_signing_key;
use super::{
    guard, guard_or, mxl_bytes, mxl_error, optional_slice_arg, optional_str_arg, out_arg, ref_arg,
    slice_arg, str_arg,
};
use crate::error::{Code, Error};
use crate::json::{self, Mode, Value};
use crate::leaving::{self, HttpRequest, LeaveRequest, TemplateInput};

/// The inputs of `mxl_complete_leave_template`, borrowed for the call.
#[repr(C)]
pub struct mxl_template_params {
    /// The make_leave response body (`{"room_version", "event"}`).
    pub response: *const u8,
    /// Length of `response`.
    pub response_len: usize,
    /// The room that was asked for.
    pub room_id: *const c_char,
    /// The leaving user that was asked for.
    pub user_id: *const c_char,
    /// This server's name.
    pub server_name: *const c_char,
    /// This server's signing key.
    pub key: *const mxl_signing_key,
    /// When true, `now_ms` is stamped as `origin_server_ts`; otherwise the template's is kept.
    pub has_now: bool,
    /// The time to stamp, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// An optional reason for the leave (NULL for none).
    pub reason: *const c_char,
    /// Room versions 1 and 2: the event ID to use (NULL for a random one of this server).
    pub event_id: *const c_char,
}

/// Turns a make_leave response into a hashed and signed leave.
///
/// On success `*out_json` receives `{"event_id", "event", "room_version", "uri_v1",
/// "uri_v2"}`; the caller frees it with `mxl_bytes_free`. A template that does not match what
/// was asked for is `MXL_RESULT_INVALID_PARAM` with a message naming the field; an unknown room
/// version is `MXL_RESULT_UNSUPPORTED_ROOM_VERSION`. Nothing is signed in either case.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_complete_leave_template(
    params: *const mxl_template_params,
    out_json: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        let out = unsafe { out_arg(out_json, "out_json") }?;
        let p = unsafe { ref_arg(params, "params") }?;
        let response = unsafe { slice_arg(p.response, p.response_len, "params.response") }?;
        let room_id = unsafe { str_arg(p.room_id, "params.room_id") }?;
        let user_id = unsafe { str_arg(p.user_id, "params.user_id") }?;
        let server_name = unsafe { str_arg(p.server_name, "params.server_name") }?;
        let key = unsafe { ref_arg(p.key, "params.key") }?;
        let reason = unsafe { optional_str_arg(p.reason, "params.reason") }?;
        let event_id = unsafe { optional_str_arg(p.event_id, "params.event_id") }?;
        let response = super::parse_json(response, Mode::Lenient, "params.response")?;
        let done = leaving::complete_template(
            &response,
            &TemplateInput {
                room_id,
                user_id,
                server_name,
                key: &key.key,
                now_ms: p.has_now.then_some(p.now_ms),
                reason,
                event_id,
            },
        )?;
        let result = json::object([
            ("event", done.event),
            ("event_id", Value::from(done.event_id)),
            ("room_version", Value::from(done.room_version.id)),
            ("uri_v1", Value::from(done.uri_v1)),
            ("uri_v2", Value::from(done.uri_v2)),
        ]);
        *out = mxl_bytes::into_raw(result.to_canonical());
        Ok(())
    })
}

/// One request the driver asks the host to perform. Borrowed for the callback only.
#[repr(C)]
pub struct mxl_http_request {
    /// The server to send to (a Matrix server name; the host resolves it).
    pub destination: *const c_char,
    /// `"GET"` or `"PUT"`.
    pub method: *const c_char,
    /// The request target, path and query, exactly as signed: send it unchanged.
    pub uri: *const c_char,
    /// The value of the `Authorization` header.
    pub authorization: *const c_char,
    /// The JSON body (NULL for none).
    pub body: *const u8,
    /// Length of `body`.
    pub body_len: usize,
}

/// Where the host writes the answer to one request, with `mxl_http_response_set`.
pub struct mxl_http_response {
    answer: Option<(u16, Vec<u8>)>,
    failure: Option<String>,
}

/// The host transport: performs one HTTPS request. Returns 0 after calling
/// `mxl_http_response_set` with the answer (whatever its status), or non-zero when the server
/// could not be reached (after `mxl_http_response_fail` with the reason, if it likes).
#[repr(C)]
pub struct mxl_transport {
    /// Passed first to `send`.
    pub userdata: *mut c_void,
    /// Performs the request. Required.
    pub send: Option<
        unsafe extern "C" fn(
            userdata: *mut c_void,
            request: *const mxl_http_request,
            response: *mut mxl_http_response,
        ) -> i32,
    >,
}

/// Records the answer to a request: its HTTP status and body (copied).
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_http_response_set(
    response: *mut mxl_http_response,
    status: u16,
    body: *const u8,
    body_len: usize,
) {
    guard_or((), || {
        // SAFETY: the pointer the library passed to the running callback.
        let Some(r) = (unsafe { response.as_mut() }) else {
            return;
        };
        // SAFETY: the caller promises `body_len` readable bytes.
        if let Ok(b) = unsafe { slice_arg(body, body_len, "body") } {
            r.answer = Some((status, b.to_vec()));
        }
    })
}

/// Records why a request could not be performed (connection refused, timeout, TLS failure),
/// for the driver's report. Call it before `send` returns non-zero. `message` is UTF-8 of
/// `message_len` bytes, copied; invalid UTF-8 is replaced.
///
/// # Safety
///
/// `response` is the pointer the running `send` callback received; `message` points to
/// `message_len` readable bytes (or is NULL with a length of 0).
#[no_mangle]
pub unsafe extern "C" fn mxl_http_response_fail(
    response: *mut mxl_http_response,
    message: *const c_char,
    message_len: usize,
) {
    guard_or((), || {
        // SAFETY: the pointer the library passed to the running callback.
        let Some(r) = (unsafe { response.as_mut() }) else {
            return;
        };
        // SAFETY: the caller promises `message_len` readable bytes.
        if let Ok(b) = unsafe { slice_arg(message.cast(), message_len, "message") } {
            r.failure = Some(String::from_utf8_lossy(b).into_owned());
        }
    })
}

/// The inputs of `mxl_leave_room`, borrowed for the call.
#[repr(C)]
pub struct mxl_leave_params {
    /// The room to leave.
    pub room_id: *const c_char,
    /// The leaving (local) user.
    pub user_id: *const c_char,
    /// This server's name.
    pub server_name: *const c_char,
    /// This server's signing key.
    pub key: *const mxl_signing_key,
    /// The invite or knock being rejected or retracted, as JSON (with `unsigned` and its
    /// stripped state), or NULL.
    pub membership_event: *const u8,
    /// Length of `membership_event`.
    pub membership_event_len: usize,
    /// The room version if known (from the invite), or NULL.
    pub room_version: *const c_char,
    /// More candidate servers as a JSON array of strings, tried after those the invite
    /// names, or NULL.
    pub extra_servers: *const u8,
    /// Length of `extra_servers`.
    pub extra_servers_len: usize,
    /// The current time in milliseconds.
    pub now_ms: i64,
    /// An optional reason (NULL for none).
    pub reason: *const c_char,
}

/// Leaves a room (rejects an invite, retracts a knock) through make_leave and send_leave.
///
/// Tries the candidate servers in order: the invite's sender server, servers from its
/// stripped state, then `extra_servers`. On each: make_leave, then send_leave v2, falling back
/// to v1 only when v2 does not exist there. When none accepts, the result is an out-of-band
/// leave for the host to store locally and never send.
///
/// `*out_json` receives `{"accepted_remotely", "server", "api_version", "event_id", "event",
/// "steps": [{"server", "action", "status", "errcode", "detail"}]}`; free it with
/// `mxl_bytes_free`. The transport is called on this thread only, during this call.
///
/// # Safety
///
/// Every pointer argument is NULL or valid as documented above for the duration of the
/// call; handles come from this library and are not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mxl_leave_room(
    params: *const mxl_leave_params,
    transport: *const mxl_transport,
    out_json: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: each pointer is checked; the caller's contract covers the rest.
        let out = unsafe { out_arg(out_json, "out_json") }?;
        let p = unsafe { ref_arg(params, "params") }?;
        let t = unsafe { ref_arg(transport, "transport") }?;
        let send = t
            .send
            .ok_or_else(|| Error::new(Code::NullArgument, "transport.send must not be NULL"))?;
        let room_id = unsafe { str_arg(p.room_id, "params.room_id") }?;
        let user_id = unsafe { str_arg(p.user_id, "params.user_id") }?;
        let server_name = unsafe { str_arg(p.server_name, "params.server_name") }?;
        let key = unsafe { ref_arg(p.key, "params.key") }?;
        let room_version = unsafe { optional_str_arg(p.room_version, "params.room_version") }?;
        let reason = unsafe { optional_str_arg(p.reason, "params.reason") }?;
        let membership = unsafe {
            optional_slice_arg(
                p.membership_event,
                p.membership_event_len,
                "params.membership_event",
            )
        }?
        .map(|b| super::parse_json(b, Mode::Lenient, "params.membership_event"))
        .transpose()?;
        let extra: Vec<String> = match unsafe {
            optional_slice_arg(p.extra_servers, p.extra_servers_len, "params.extra_servers")
        }? {
            None => vec![],
            Some(b) => super::parse_json(b, Mode::Lenient, "params.extra_servers")?
                .as_array()
                .ok_or_else(|| Error::invalid("params.extra_servers must be a JSON array"))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::invalid("params.extra_servers must hold strings"))
                })
                .collect::<Result<_, _>>()?,
        };
        let req = LeaveRequest {
            room_id,
            user_id,
            server_name,
            key: &key.key,
            membership_event: membership.as_ref(),
            room_version,
            extra_servers: &extra,
            now_ms: p.now_ms,
            reason,
        };
        let mut transport = |r: &HttpRequest| -> leaving::HttpResult {
            let c = |s: &str| {
                CString::new(s).map_err(|_| "a request field contains a NUL byte".to_string())
            };
            let (dest, method, uri, auth) = (
                c(&r.destination)?,
                c(r.method)?,
                c(&r.uri)?,
                c(&r.authorization)?,
            );
            let (body, body_len) = r
                .body
                .as_ref()
                .map_or((std::ptr::null(), 0), |b| (b.as_ptr(), b.len()));
            let creq = mxl_http_request {
                destination: dest.as_ptr(),
                method: method.as_ptr(),
                uri: uri.as_ptr(),
                authorization: auth.as_ptr(),
                body,
                body_len,
            };
            let mut resp = mxl_http_response {
                answer: None,
                failure: None,
            };
            // SAFETY: the host's transport with pointers valid for the call.
            let status = unsafe { send(t.userdata, &creq, &mut resp) };
            match (status, resp.answer, resp.failure) {
                (0, Some(a), _) => Ok(a),
                (0, None, _) => {
                    Err("the transport returned 0 without calling mxl_http_response_set".into())
                }
                (_, _, Some(why)) => Err(why),
                (n, _, None) => Err(format!(
                    "the transport could not reach the server (status {n})"
                )),
            }
        };
        let outcome = leaving::run(&req, &mut transport)?;
        let steps = outcome
            .steps
            .iter()
            .map(|s| {
                json::object([
                    ("action", Value::from(s.action)),
                    ("detail", Value::from(s.detail.as_str())),
                    (
                        "errcode",
                        s.errcode.as_deref().map_or(Value::Null, Value::from),
                    ),
                    ("server", Value::from(s.server.as_str())),
                    ("status", Value::Int(s.status.into())),
                ])
            })
            .collect();
        let result = json::object([
            ("accepted_remotely", Value::Bool(outcome.accepted_remotely)),
            (
                "api_version",
                outcome
                    .api_version
                    .map_or(Value::Null, |v| Value::Int(v.into())),
            ),
            ("event", outcome.event),
            ("event_id", Value::from(outcome.event_id)),
            ("server", outcome.server.map_or(Value::Null, Value::from)),
            ("steps", Value::Array(steps)),
        ]);
        *out = mxl_bytes::into_raw(result.to_canonical());
        Ok(())
    })
}
