//! The leaving side: turning a `make_leave` template into a signed leave, and driving the
//! handshake against candidate resident servers until one accepts, with an out-of-band leave
//! when none does, so that rejecting an invite always completes.

use crate::error::{Code, Error};
use crate::event;
use crate::json::{self, Object, Value};
use crate::keys::SigningKey;
use crate::version::RoomVersion;
use crate::xmatrix;

/// Percent-encodes a path parameter: everything but `A-Z a-z 0-9 - . _ ~`.
pub fn encode_path_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request target of `GET /make_leave`.
pub fn make_leave_uri(room_id: &str, user_id: &str) -> String {
    format!(
        "/_matrix/federation/v1/make_leave/{}/{}",
        encode_path_param(room_id),
        encode_path_param(user_id)
    )
}

/// The request target of `PUT /send_leave` for API version 1 or 2.
pub fn send_leave_uri(room_id: &str, event_id: &str, api_version: u8) -> String {
    format!(
        "/_matrix/federation/v{}/send_leave/{}/{}",
        api_version,
        encode_path_param(room_id),
        encode_path_param(event_id)
    )
}

/// A leave ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletedLeave {
    /// The room version the template was for.
    pub room_version: &'static RoomVersion,
    /// The event's ID.
    pub event_id: String,
    /// The hashed and signed event.
    pub event: Value,
    /// The `PUT /v2/send_leave` request target.
    pub uri_v2: String,
    /// The `PUT /v1/send_leave` request target.
    pub uri_v1: String,
}

/// What the leaving server fills into a template.
#[derive(Clone, Debug)]
pub struct TemplateInput<'a> {
    /// The room the leave is for.
    pub room_id: &'a str,
    /// The leaving user.
    pub user_id: &'a str,
    /// This (the leaving) server's name.
    pub server_name: &'a str,
    /// This server's signing key.
    pub key: &'a SigningKey,
    /// The time to stamp, in ms; `None` keeps the template's `origin_server_ts`.
    pub now_ms: Option<i64>,
    /// An optional `reason` for the leave.
    pub reason: Option<&'a str>,
    /// For room versions 1 and 2: the event ID to use; `None` makes a random one.
    pub event_id: Option<&'a str>,
}

fn discard(why: impl Into<String>) -> Error {
    Error::invalid(format!("make_leave template discarded: {}", why.into()))
}

/// Completes a `make_leave` response into a signed leave.
///
/// The checks the specification requires of the leaving server come first: `room_id`,
/// `sender`, `state_key`, `type` and `content.membership` must be what was asked for, or the
/// template is discarded. Then any `hashes`, `signatures` and `unsigned` are dropped, `origin`
/// (when present) and `origin_server_ts` are set, the optional `reason` is added, versions 1
/// and 2 get an event ID of this server, and the event is hashed and signed.
pub fn complete_template(
    response: &Value,
    input: &TemplateInput<'_>,
) -> Result<CompletedLeave, Error> {
    let version_id = match response.get("room_version") {
        None => "1",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(discard(format!(
                "room_version must be a string, not {}",
                other.type_name()
            )))
        }
    };
    let version = RoomVersion::require(version_id)?;
    let template = response
        .get("event")
        .and_then(Value::as_object)
        .ok_or_else(|| discard("event is missing or not an object"))?;
    let field = |k: &str| template.get(k).and_then(Value::as_str);
    if field("room_id") != Some(input.room_id) {
        return Err(discard(format!("room_id is not {}", input.room_id)));
    }
    if field("sender") != Some(input.user_id) {
        return Err(discard(format!("sender is not {}", input.user_id)));
    }
    if field("state_key") != Some(input.user_id) {
        return Err(discard(format!("state_key is not {}", input.user_id)));
    }
    if field("type") != Some("m.room.member") {
        return Err(discard("type is not m.room.member"));
    }
    let content = template
        .get("content")
        .and_then(Value::as_object)
        .ok_or_else(|| discard("content is missing"))?;
    if content.get("membership").and_then(Value::as_str) != Some("leave") {
        return Err(discard("content.membership is not leave"));
    }

    let mut ev: Object = template
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "hashes" | "signatures" | "unsigned"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if ev.contains_key("origin") {
        ev.insert("origin".into(), Value::from(input.server_name));
    }
    if let Some(ts) = input.now_ms {
        // The host's clock, kept within what canonical JSON can carry.
        ev.insert(
            "origin_server_ts".into(),
            Value::Int(ts.clamp(0, json::MAX_SAFE_INTEGER)),
        );
    }
    if let Some(reason) = input.reason {
        if let Some(Value::Object(c)) = ev.get_mut("content") {
            c.insert("reason".into(), Value::from(reason));
        }
    }
    if version.event_id_is_hash() {
        ev.remove("event_id");
    } else {
        let id = match input.event_id {
            Some(id) => id.to_string(),
            None => {
                let mut rnd = [0u8; 12];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
                format!(
                    "${}:{}",
                    crate::keys::b64url_encode(&rnd),
                    input.server_name
                )
            }
        };
        ev.insert("event_id".into(), Value::String(id));
    }
    let mut ev = Value::Object(ev);
    event::sign_event(&mut ev, version, input.server_name, input.key)?;
    let event_id = event::event_id(&ev, version)?;
    Ok(CompletedLeave {
        room_version: version,
        uri_v2: send_leave_uri(input.room_id, &event_id, 2),
        uri_v1: send_leave_uri(input.room_id, &event_id, 1),
        event_id,
        event: ev,
    })
}

/// One HTTP request for the host's transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The server to send to.
    pub destination: String,
    /// `GET` or `PUT`.
    pub method: &'static str,
    /// The request target, exactly as signed.
    pub uri: String,
    /// The `Authorization` header value.
    pub authorization: String,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
}

/// The answer to one request, or why there was none.
pub type HttpResult = Result<(u16, Vec<u8>), String>;

/// What the driver needs to know about the leave.
#[derive(Clone, Debug)]
pub struct LeaveRequest<'a> {
    /// The room to leave.
    pub room_id: &'a str,
    /// The leaving (local) user.
    pub user_id: &'a str,
    /// This server's name.
    pub server_name: &'a str,
    /// This server's signing key.
    pub key: &'a SigningKey,
    /// The invite or knock being rejected or retracted, as a PDU, if the host has it.
    pub membership_event: Option<&'a Value>,
    /// The room version, when the host knows it (from the invite); used for the
    /// out-of-band leave.
    pub room_version: Option<&'a str>,
    /// More candidate servers from the host, tried after those found in the invite.
    pub extra_servers: &'a [String],
    /// The current time in ms.
    pub now_ms: i64,
    /// An optional reason.
    pub reason: Option<&'a str>,
}

/// One step of the handshake, for the result's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The server asked.
    pub server: String,
    /// `make_leave`, `send_leave_v2` or `send_leave_v1`.
    pub action: &'static str,
    /// The HTTP status, or 0 when the server could not be reached.
    pub status: u16,
    /// The Matrix errcode of a refusal, if any.
    pub errcode: Option<String>,
    /// What happened, in words.
    pub detail: String,
}

/// How the leave ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaveOutcome {
    /// `true` when a resident server accepted the leave; `false` for an out-of-band leave.
    pub accepted_remotely: bool,
    /// The server that accepted it.
    pub server: Option<String>,
    /// `1` or `2`: the send_leave API that succeeded.
    pub api_version: Option<u8>,
    /// The leave's event ID.
    pub event_id: String,
    /// The leave event: sent to the resident, or to store locally when out of band.
    pub event: Value,
    /// Every step, server by server.
    pub steps: Vec<Step>,
}

/// The candidate servers, in order: the invite's (or knock's) sender server, servers of the
/// senders in the invite's stripped state, then the host's own list; this server is skipped
/// and each server appears once.
pub fn candidate_servers(req: &LeaveRequest<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !s.is_empty() && s != req.server_name && !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    };
    let server_of = |id: &str| id.split_once(':').map(|(_, s)| s.to_string());
    if let Some(ev) = req.membership_event {
        if let Some(s) = ev.get("sender").and_then(Value::as_str).and_then(server_of) {
            push(&s);
        }
        let unsigned = ev.get("unsigned");
        for key in ["invite_room_state", "knock_room_state"] {
            if let Some(list) = unsigned.and_then(|u| u.get(key)).and_then(Value::as_array) {
                for st in list {
                    if let Some(s) = st.get("sender").and_then(Value::as_str).and_then(server_of) {
                        push(&s);
                    }
                }
            }
        }
    }
    for s in req.extra_servers {
        push(s);
    }
    out
}

fn errcode_of(body: &[u8]) -> Option<String> {
    Value::parse(body, json::Mode::Lenient)
        .ok()
        .and_then(|v| v.get("errcode").and_then(Value::as_str).map(str::to_string))
}

/// Whether a `send_leave` v2 answer means the endpoint does not exist, so v1 is worth a try:
/// `M_UNRECOGNIZED` with 400, 404 or 405, or a 404 whose body is not JSON.
pub fn should_fall_back_to_v1(status: u16, body: &[u8]) -> bool {
    let parsed = Value::parse(body, json::Mode::Lenient).ok();
    match parsed {
        None => status == 404,
        Some(v) => {
            matches!(status, 400 | 404 | 405)
                && v.get("errcode").and_then(Value::as_str) == Some("M_UNRECOGNIZED")
        }
    }
}

fn summarize(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    format!("HTTP {status}: {text}")
}

/// Runs the handshake: for each candidate server, `make_leave`, then `send_leave` v2 with a
/// fallback to v1 when v2 does not exist. The first acceptance ends it. When every server
/// refuses or cannot be reached, the result is an out-of-band leave for the host to store
/// locally and never send: the rejection completes either way.
pub fn run(
    req: &LeaveRequest<'_>,
    transport: &mut dyn FnMut(&HttpRequest) -> HttpResult,
) -> Result<LeaveOutcome, Error> {
    let mut steps = Vec::new();
    let servers = candidate_servers(req);
    for server in &servers {
        if let Some(outcome) = try_server(req, server, transport, &mut steps)? {
            return Ok(LeaveOutcome { steps, ..outcome });
        }
    }
    let (event_id, event) = out_of_band_leave(req)?;
    steps.push(Step {
        server: req.server_name.to_string(),
        action: "out_of_band",
        status: 0,
        errcode: None,
        detail: if servers.is_empty() {
            "no candidate server; the leave is stored locally only".into()
        } else {
            "no server accepted the leave; it is stored locally only".into()
        },
    });
    Ok(LeaveOutcome {
        accepted_remotely: false,
        server: None,
        api_version: None,
        event_id,
        event,
        steps,
    })
}

fn try_server(
    req: &LeaveRequest<'_>,
    server: &str,
    transport: &mut dyn FnMut(&HttpRequest) -> HttpResult,
    steps: &mut Vec<Step>,
) -> Result<Option<LeaveOutcome>, Error> {
    let uri = make_leave_uri(req.room_id, req.user_id);
    let auth = xmatrix::authorization(req.key, req.server_name, server, "GET", &uri, None)?;
    let request = HttpRequest {
        destination: server.to_string(),
        method: "GET",
        uri,
        authorization: auth,
        body: None,
    };
    let mut step = |action, status, errcode, detail: String| {
        steps.push(Step {
            server: server.to_string(),
            action,
            status,
            errcode,
            detail,
        })
    };
    let (status, body) = match transport(&request) {
        Ok(r) => r,
        Err(why) => {
            step("make_leave", 0, None, format!("unreachable: {why}"));
            return Ok(None);
        }
    };
    if status != 200 {
        step(
            "make_leave",
            status,
            errcode_of(&body),
            summarize(status, &body),
        );
        return Ok(None);
    }
    let template = match Value::parse(&body, json::Mode::Lenient) {
        Ok(t) => t,
        Err(e) => {
            step(
                "make_leave",
                status,
                None,
                format!("the response is not JSON: {e}"),
            );
            return Ok(None);
        }
    };
    let completed = match complete_template(
        &template,
        &TemplateInput {
            room_id: req.room_id,
            user_id: req.user_id,
            server_name: req.server_name,
            key: req.key,
            now_ms: Some(req.now_ms),
            reason: req.reason,
            event_id: None,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            step("make_leave", status, None, e.message);
            return Ok(None);
        }
    };
    step("make_leave", 200, None, "template received".into());

    let body = completed.event.to_canonical();
    for (api, uri) in [(2u8, &completed.uri_v2), (1u8, &completed.uri_v1)] {
        let auth = xmatrix::authorization(
            req.key,
            req.server_name,
            server,
            "PUT",
            uri,
            Some(&completed.event),
        )?;
        let action = if api == 2 {
            "send_leave_v2"
        } else {
            "send_leave_v1"
        };
        let request = HttpRequest {
            destination: server.to_string(),
            method: "PUT",
            uri: uri.clone(),
            authorization: auth,
            body: Some(body.clone()),
        };
        let (status, resp) = match transport(&request) {
            Ok(r) => r,
            Err(why) => {
                step(action, 0, None, format!("unreachable: {why}"));
                return Ok(None);
            }
        };
        if status == 200 {
            step(action, 200, None, "accepted".into());
            return Ok(Some(LeaveOutcome {
                accepted_remotely: true,
                server: Some(server.to_string()),
                api_version: Some(api),
                event_id: completed.event_id,
                event: completed.event,
                steps: vec![],
            }));
        }
        let fall_back = api == 2 && should_fall_back_to_v1(status, &resp);
        step(
            action,
            status,
            errcode_of(&resp),
            if fall_back {
                format!(
                    "{}; v2 is not implemented there, trying v1",
                    summarize(status, &resp)
                )
            } else {
                summarize(status, &resp)
            },
        );
        if !fall_back {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The leave the host stores when no resident accepted one: it follows the invite or knock
/// (its only prev and auth event), is signed by this server, and is marked in `unsigned` as
/// an out-of-band membership never to be sent over federation.
pub fn out_of_band_leave(req: &LeaveRequest<'_>) -> Result<(String, Value), Error> {
    let version_id = req
        .room_version
        .or_else(|| {
            req.membership_event
                .and_then(|e| e.get("unsigned"))
                .and_then(|u| u.get("room_version"))
                .and_then(Value::as_str)
        })
        .unwrap_or("10");
    let version = RoomVersion::require(version_id)?;
    let mut prev = Vec::new();
    let mut depth = 1;
    if let Some(m) = req.membership_event {
        let id = match m.get("event_id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => event::event_id(m, version)?,
        };
        let reference = if version.event_refs_are_pairs() {
            let hash = crate::keys::b64_encode(&event::reference_hash(m, version)?);
            Value::Array(vec![
                Value::String(id),
                json::object([("sha256", Value::String(hash))]),
            ])
        } else {
            Value::String(id)
        };
        prev.push(reference);
        depth = m
            .get("depth")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .saturating_add(1)
            .min(json::MAX_SAFE_INTEGER);
    }
    let mut content = Object::new();
    content.insert("membership".into(), Value::from("leave"));
    if let Some(r) = req.reason {
        content.insert("reason".into(), Value::from(r));
    }
    let mut ev = json::object([
        ("type", Value::from("m.room.member")),
        ("room_id", Value::from(req.room_id)),
        ("sender", Value::from(req.user_id)),
        ("state_key", Value::from(req.user_id)),
        ("content", Value::Object(content)),
        (
            "origin_server_ts",
            Value::Int(req.now_ms.clamp(0, json::MAX_SAFE_INTEGER)),
        ),
        ("depth", Value::Int(depth)),
        ("prev_events", Value::Array(prev.clone())),
        ("auth_events", Value::Array(prev)),
    ]);
    if !version.event_id_is_hash() {
        let mut rnd = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
        let id = format!("${}:{}", crate::keys::b64url_encode(&rnd), req.server_name);
        ev.as_object_mut()
            .ok_or_else(|| Error::new(Code::Internal, "event is not an object"))?
            .insert("event_id".into(), Value::String(id));
    }
    event::sign_event(&mut ev, version, req.server_name, req.key)?;
    let event_id = event::event_id(&ev, version)?;
    if let Some(obj) = ev.as_object_mut() {
        obj.insert(
            "unsigned".into(),
            json::object([("out_of_band_membership", Value::Bool(true))]),
        );
    }
    Ok((event_id, ev))
}
