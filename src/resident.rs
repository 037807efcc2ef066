//! The resident side: answering `make_leave` and `send_leave` for a room this server is in.
//!
//! [`Resident`] holds this server's name and options; everything about rooms, keys and
//! storage comes from a [`ResidentHost`] the homeserver implements. Every answer is an HTTP
//! status and a JSON body, ready to send; an accepted leave also says what was stored and
//! where to relay it.

use std::sync::Arc;

use crate::acl;
use crate::auth;
use crate::error::{Code, Error};
use crate::event;
use crate::json::{self, Object, Value};
use crate::keys::{self, ServerKey};
use crate::version::RoomVersion;

/// Largest PDU accepted, in bytes (inclusive).
pub const MAX_PDU_BYTES: usize = 65536;
/// Largest room ID, user ID, event ID, type or state key, in bytes.
pub const MAX_ID_BYTES: usize = 255;
/// Most `auth_events` a PDU may list.
pub const MAX_AUTH_EVENTS: usize = 10;
/// Most `prev_events` a PDU may list.
pub const MAX_PREV_EVENTS: usize = 20;
/// How far past now a key's `valid_until_ts` is believed: the spec has servers use the lesser
/// of that field and seven days into the future.
pub const MAX_KEY_VALIDITY_MS: i64 = 7 * 24 * 3600 * 1000;

/// Severity of a log record sent to the host.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Failures of the host or the library.
    Error = 1,
    /// Refused requests.
    Warn = 2,
    /// Accepted leaves and templates handed out.
    Info = 3,
    /// Decisions and counts.
    Debug = 4,
    /// Whole payloads.
    Trace = 5,
}

/// What the library needs from the homeserver. Every method may fail; a failure becomes a
/// `500 M_UNKNOWN` answer and nothing is reported as stored.
pub trait ResidentHost {
    /// The room's version, or `None` for a room this server does not know.
    fn room_version(&self, room_id: &str) -> Result<Option<String>, Error>;
    /// The current state event of this type and state key, as a PDU.
    ///
    /// Events are handed over in an [`Arc`] so that a host which keeps parsed events in
    /// memory gives out a reference instead of a copy; a host that builds the event for the
    /// call wraps it with `Arc::new`.
    fn state_event(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Arc<Value>>, Error>;
    /// An event of this room by ID, as a PDU, if the server has it.
    fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Arc<Value>>, Error>;
    /// Whether the server has this event of this room. The default asks [`Self::event`];
    /// a host that can answer without building the event should.
    fn has_event(&self, room_id: &str, event_id: &str) -> Result<bool, Error> {
        Ok(self.event(room_id, event_id)?.is_some())
    }
    /// The ID of the current state event of this type and state key. The default asks
    /// [`Self::state_event`] and takes the ID with [`stored_event_id`]; a host that knows
    /// the IDs of its state should answer without building the event.
    fn state_event_id(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        version: &RoomVersion,
    ) -> Result<Option<String>, Error> {
        match self.state_event(room_id, event_type, state_key)? {
            Some(ev) => stored_event_id(&ev, version).map(Some),
            None => Ok(None),
        }
    }
    /// The reference hash of an event of this room, for the `[id, {sha256}]` references of
    /// room versions 1 and 2. The default asks [`Self::event`] and hashes it.
    fn event_reference_hash(
        &self,
        room_id: &str,
        event_id: &str,
        version: &RoomVersion,
    ) -> Result<Option<[u8; 32]>, Error> {
        match self.event(room_id, event_id)? {
            Some(ev) => event::reference_hash(&ev, version).map(Some),
            None => Ok(None),
        }
    }
    /// Whether a record at `level` would be kept; when not, the library does not build it.
    /// The default is true.
    fn log_enabled(&self, _level: LogLevel) -> bool {
        true
    }
    /// The room's forward extremities with their depths.
    fn forward_extremities(&self, room_id: &str) -> Result<Vec<(String, i64)>, Error>;
    /// The servers with at least one joined member (this server included if it is in).
    fn servers_in_room(&self, room_id: &str) -> Result<Vec<String>, Error>;
    /// The known verify keys of a remote server, with their validity.
    fn server_keys(&self, server_name: &str) -> Result<Vec<ServerKey>, Error>;
    /// Stores an accepted event. `soft_failed` events are kept but must not be relayed or
    /// treated as current state. Only an `Ok` return counts as stored.
    fn store_event(
        &self,
        room_id: &str,
        event_id: &str,
        event: &Value,
        soft_failed: bool,
    ) -> Result<(), Error>;
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A log record. The default drops it.
    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// The ID of an event a host stored: the `event_id` it carries, if any (always, in room
/// versions 1 and 2), else `$` + its reference hash.
pub fn stored_event_id(ev: &Value, version: &RoomVersion) -> Result<String, Error> {
    if let Some(id) = ev.get("event_id").and_then(Value::as_str) {
        return Ok(id.to_string());
    }
    event::event_id(ev, version)
}

/// Sends a record to the host, building its text only when the host keeps that level.
fn log(host: &dyn ResidentHost, level: LogLevel, message: impl FnOnce() -> String) {
    if host.log_enabled(level) {
        host.log(level, &message());
    }
}

/// Options of a resident.
#[derive(Clone, Debug)]
pub struct ResidentOptions {
    /// Answer the legacy `PUT /v1/send_leave` (on by default).
    pub enable_v1: bool,
    /// Let a server the room's ACL denies still leave (off by default).
    pub acl_allows_leave: bool,
}

impl Default for ResidentOptions {
    fn default() -> Self {
        ResidentOptions {
            enable_v1: true,
            acl_allows_leave: false,
        }
    }
}

/// The resident side of the handshake for one homeserver.
#[derive(Clone, Debug)]
pub struct Resident {
    server_name: String,
    options: ResidentOptions,
    /// Serialises the last duplicate check and the store of the same event ID, so that two
    /// threads receiving the same leave at once store it once. Striped by event ID.
    store_locks: std::sync::Arc<[std::sync::Mutex<()>]>,
}

/// How many stripes the store locks have.
const STORE_LOCK_STRIPES: usize = 64;

/// Details of an accepted leave.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// The event's ID.
    pub event_id: String,
    /// The event as stored (the redacted copy when its content hash did not match).
    pub event: Value,
    /// The content hash did not match, so the redacted copy was stored.
    pub redacted: bool,
    /// The leave passed its auth events but not the room's current state: stored, not relayed.
    pub soft_failed: bool,
    /// The host already had this event; nothing was stored this time.
    pub duplicate: bool,
    /// Servers to send the event to: those in the room, less the origin and this server.
    /// Empty for duplicates and soft-failed events.
    pub relay_to: Vec<String>,
}

/// An answer to send back to the requesting server.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The error, when the request was refused.
    pub error: Option<Error>,
    /// What was accepted, for a successful `send_leave`.
    pub accepted: Option<Accepted>,
}

impl Response {
    fn refuse(e: Error) -> Response {
        Response {
            status: e.http_status(),
            body: e.to_body(),
            error: Some(e),
            accepted: None,
        }
    }
}

/// Which `send_leave` endpoint was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendLeaveApi {
    /// `PUT /_matrix/federation/v1/send_leave`: the answer is `[200, {}]`.
    V1,
    /// `PUT /_matrix/federation/v2/send_leave`: the answer is `{}`.
    V2,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid(msg)
}

fn server_part<'a>(id: &'a str, field: &str) -> Result<&'a str, Error> {
    match id.split_once(':') {
        Some((_, s)) if !s.is_empty() => Ok(s),
        _ => Err(invalid(format!("{field} {id:?} has no server name part"))),
    }
}

fn check_id(id: &str, sigil: char, field: &str) -> Result<(), Error> {
    if id.len() > MAX_ID_BYTES {
        return Err(invalid(format!(
            "{field} is {} bytes long; the limit is {MAX_ID_BYTES}",
            id.len()
        )));
    }
    if !id.starts_with(sigil) {
        return Err(invalid(format!("{field} {id:?} must start with {sigil:?}")));
    }
    // The identifier grammar allows almost anything in historical localparts, but never NUL.
    if id.contains('\0') {
        return Err(invalid(format!("{field} contains a NUL character")));
    }
    Ok(())
}

/// Decodes `%XX` escapes. Invalid escapes are an error naming the field.
pub fn percent_decode(s: &str, field: &str) -> Result<String, Error> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("{field}: invalid percent-encoding")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{field}: not UTF-8 once decoded")))
}

impl Resident {
    /// A resident for `server_name` with these options.
    pub fn new(server_name: &str, options: ResidentOptions) -> Resident {
        Resident {
            server_name: server_name.to_string(),
            options,
            store_locks: (0..STORE_LOCK_STRIPES)
                .map(|_| std::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// This server's name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The room's version and the servers in it; the room must be known and this server in it.
    fn room_version(
        &self,
        host: &dyn ResidentHost,
        room_id: &str,
    ) -> Result<(&'static RoomVersion, Vec<String>), Error> {
        let Some(v) = host.room_version(room_id)? else {
            return Err(Error::not_found(format!(
                "room {room_id} is not known here"
            )));
        };
        let version = RoomVersion::get(&v).ok_or_else(|| {
            Error::new(
                Code::UnsupportedRoomVersion,
                format!("room {room_id} has room version {v:?}, which is not supported"),
            )
        })?;
        let servers = host.servers_in_room(room_id)?;
        if !servers.contains(&self.server_name) {
            return Err(Error::not_found(format!(
                "this server is no longer in room {room_id}"
            )));
        }
        Ok((version, servers))
    }

    fn check_acl(&self, host: &dyn ResidentHost, room_id: &str, origin: &str) -> Result<(), Error> {
        if self.options.acl_allows_leave {
            return Ok(());
        }
        if let Some(ev) = host.state_event(room_id, "m.room.server_acl", "")? {
            let content = ev.get("content").unwrap_or(&Value::Null);
            if !acl::server_allowed(content, origin) {
                return Err(Error::forbidden(format!(
                    "server {origin} is denied by the room's m.room.server_acl"
                )));
            }
        }
        Ok(())
    }

    /// Answers `GET /_matrix/federation/v1/make_leave/{room_id}/{user_id}` from `origin`
    /// (the authenticated requesting server). Path parameters may be given percent-encoded.
    pub fn make_leave(
        &self,
        host: &dyn ResidentHost,
        room_id: &str,
        user_id: &str,
        origin: &str,
    ) -> Response {
        match self.make_leave_inner(host, room_id, user_id, origin) {
            Ok(body) => {
                log(host, LogLevel::Info, || {
                    format!("make_leave: template for {user_id} in {room_id} to {origin}")
                });
                Response {
                    status: 200,
                    body,
                    error: None,
                    accepted: None,
                }
            }
            Err(e) => {
                log(
                    host,
                    if e.code == Code::HostFailure {
                        LogLevel::Error
                    } else {
                        LogLevel::Warn
                    },
                    || format!("make_leave from {origin} for {user_id} in {room_id} refused: {e}"),
                );
                Response::refuse(e)
            }
        }
    }

    fn make_leave_inner(
        &self,
        host: &dyn ResidentHost,
        room_id: &str,
        user_id: &str,
        origin: &str,
    ) -> Result<Vec<u8>, Error> {
        let room_id = percent_decode(room_id, "roomId")?;
        let user_id = percent_decode(user_id, "userId")?;
        check_id(&room_id, '!', "roomId")?;
        check_id(&user_id, '@', "userId")?;
        if server_part(&user_id, "userId")? != origin {
            return Err(Error::forbidden(format!(
                "user {user_id} does not belong to the requesting server {origin}"
            )));
        }
        let (version, _) = self.room_version(host, &room_id)?;
        self.check_acl(host, &room_id, origin)?;

        let member = host.state_event(&room_id, "m.room.member", &user_id)?;
        let membership = member
            .as_ref()
            .and_then(|m| m.get("content"))
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
            .unwrap_or("leave");
        let may_leave =
            matches!(membership, "join" | "invite") || (version.knock && membership == "knock");
        if !may_leave {
            return Err(Error::forbidden(format!(
                "user {user_id} is not in room {room_id} (membership {membership})"
            )));
        }

        let mut extremities = host.forward_extremities(&room_id)?;
        if extremities.is_empty() {
            return Err(Error::host(format!(
                "room {room_id} has no forward extremities"
            )));
        }
        // Keep the deepest extremities when there are more than the PDU limit allows.
        extremities.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        extremities.truncate(MAX_PREV_EVENTS);
        let max_depth = extremities.iter().map(|e| e.1).max().unwrap_or(0);
        let depth = max_depth.saturating_add(1).clamp(1, json::MAX_SAFE_INTEGER);

        let mut auth_ids: Vec<String> = Vec::new();
        for (ty, sk) in auth::leave_auth_selection(&user_id, &user_id, version) {
            if let Some(id) = host.state_event_id(&room_id, &ty, &sk, version)? {
                auth_ids.push(id);
            }
        }
        let prev_ids: Vec<String> = extremities.into_iter().map(|e| e.0).collect();

        let refs = |ids: Vec<String>| -> Result<Value, Error> {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if version.event_refs_are_pairs() {
                    let hash = host
                        .event_reference_hash(&room_id, &id, version)?
                        .ok_or_else(|| {
                            Error::host(format!("event {id} of room {room_id} is missing"))
                        })?;
                    let hash = keys::b64_encode(&hash);
                    out.push(Value::Array(vec![
                        Value::String(id),
                        json::object([("sha256", Value::String(hash))]),
                    ]));
                } else {
                    out.push(Value::String(id));
                }
            }
            Ok(Value::Array(out))
        };

        let mut ev = Object::new();
        ev.insert("type".into(), Value::from("m.room.member"));
        ev.insert("room_id".into(), Value::from(room_id.as_str()));
        ev.insert("sender".into(), Value::from(user_id.as_str()));
        ev.insert("state_key".into(), Value::from(user_id.as_str()));
        ev.insert(
            "content".into(),
            json::object([("membership", Value::from("leave"))]),
        );
        ev.insert("origin".into(), Value::from(self.server_name.as_str()));
        // The host's clock, kept within what canonical JSON can carry.
        let now = host.now_ms().clamp(0, json::MAX_SAFE_INTEGER);
        ev.insert("origin_server_ts".into(), Value::Int(now));
        ev.insert("depth".into(), Value::Int(depth));
        ev.insert("prev_events".into(), refs(prev_ids)?);
        ev.insert("auth_events".into(), refs(auth_ids)?);
        if !version.event_id_is_hash() {
            // Versions 1 and 2 carry an ID; the leaving server replaces it with its own.
            let mut rnd = [0u8; 12];
            let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut rnd);
            let local: String = keys::b64url_encode(&rnd);
            ev.insert(
                "event_id".into(),
                Value::String(format!("${local}:{}", self.server_name)),
            );
        }
        let body = json::object([
            ("event", Value::Object(ev)),
            ("room_version", Value::from(version.id)),
        ]);
        Ok(body.to_canonical())
    }

    /// Answers `PUT /_matrix/federation/{v1,v2}/send_leave/{room_id}/{event_id}` from
    /// `origin` (the authenticated requesting server) with the raw request body.
    pub fn send_leave(
        &self,
        host: &dyn ResidentHost,
        room_id: &str,
        event_id: &str,
        body: &[u8],
        origin: &str,
        api: SendLeaveApi,
    ) -> Response {
        let result = if api == SendLeaveApi::V1 && !self.options.enable_v1 {
            Err(Error::new(
                Code::Unrecognized,
                "PUT /_matrix/federation/v1/send_leave is switched off on this server",
            ))
        } else {
            self.send_leave_inner(host, room_id, event_id, body, origin)
        };
        match result {
            Ok(accepted) => {
                log(host, LogLevel::Info, || {
                    format!(
                        "send_leave: accepted {} in {room_id} from {origin}{}{}{}",
                        accepted.event_id,
                        if accepted.duplicate {
                            " (already stored)"
                        } else {
                            ""
                        },
                        if accepted.soft_failed {
                            " (soft-failed)"
                        } else {
                            ""
                        },
                        if accepted.redacted {
                            " (redacted: content hash mismatch)"
                        } else {
                            ""
                        },
                    )
                });
                let body = match api {
                    SendLeaveApi::V2 => b"{}".to_vec(),
                    SendLeaveApi::V1 => b"[200,{}]".to_vec(),
                };
                Response {
                    status: 200,
                    body,
                    error: None,
                    accepted: Some(accepted),
                }
            }
            Err(e) => {
                log(
                    host,
                    if e.code == Code::HostFailure {
                        LogLevel::Error
                    } else {
                        LogLevel::Warn
                    },
                    || format!("send_leave from {origin} in {room_id} refused: {e}"),
                );
                Response::refuse(e)
            }
        }
    }

    fn send_leave_inner(
        &self,
        host: &dyn ResidentHost,
        room_id: &str,
        path_event_id: &str,
        body: &[u8],
        origin: &str,
    ) -> Result<Accepted, Error> {
        // Cheap checks first: size, room, JSON, format. No key is looked up before these.
        if body.len() > MAX_PDU_BYTES {
            return Err(Error::new(
                Code::TooLarge,
                format!(
                    "the event is {} bytes; the limit is {MAX_PDU_BYTES}",
                    body.len()
                ),
            ));
        }
        let room_id = percent_decode(room_id, "roomId")?;
        let path_event_id = percent_decode(path_event_id, "eventId")?;
        check_id(&room_id, '!', "roomId")?;
        check_id(&path_event_id, '$', "eventId")?;
        let (version, servers) = self.room_version(host, &room_id)?;
        let pdu = Value::parse(body, version.json_mode())?;
        check_format(&pdu, version)?;

        // The checks the specification asks of send_leave, each a 400 M_INVALID_PARAM.
        let body_room = pdu.get("room_id").and_then(Value::as_str).unwrap_or("");
        if body_room != room_id {
            return Err(invalid(format!(
                "room_id {body_room:?} in the event does not match the room {room_id:?} in the path"
            )));
        }
        let signed_bytes = event::redacted_signing_bytes(&pdu, version)?;
        let reference: [u8; 32] = sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(&signed_bytes),
        )
        .into();
        let event_id = if version.event_id_is_hash() {
            event::event_id_from_hash(&reference, version).unwrap_or_default()
        } else {
            event::event_id(&pdu, version)?
        };
        if event_id != path_event_id {
            return Err(invalid(format!(
                "the event's ID is {event_id}, not the {path_event_id} given in the path"
            )));
        }
        let ty = pdu.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "m.room.member" {
            return Err(invalid(format!("type is {ty:?}, not m.room.member")));
        }
        let Some(state_key) = pdu.get("state_key").and_then(Value::as_str) else {
            return Err(invalid(
                "state_key is missing: a membership event is a state event",
            ));
        };
        let membership = pdu
            .get("content")
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str);
        if membership != Some("leave") {
            let found = match pdu.get("content").and_then(|c| c.get("membership")) {
                None => "missing".to_string(),
                Some(Value::String(m)) => format!("{m:?}"),
                Some(other) => format!("a JSON {}", other.type_name()),
            };
            return Err(invalid(format!(
                "content.membership is {found}, not \"leave\""
            )));
        }
        let sender = pdu.get("sender").and_then(Value::as_str).unwrap_or("");
        if state_key != sender {
            return Err(invalid(format!(
                "state_key {state_key:?} differs from sender {sender:?}: send_leave only takes a user's own leave"
            )));
        }
        let sender_server = server_part(sender, "sender")?;
        if sender_server != origin {
            return Err(invalid(format!(
                "sender {sender} is not from the requesting server {origin}"
            )));
        }
        self.check_acl(host, &room_id, origin)?;

        // A leave the host already stored is answered again without any further work. Only
        // where the ID is the event's hash (versions 3+) does a known ID prove the same
        // event; in versions 1 and 2 the sender writes the ID, so this check waits until the
        // signatures have been verified (below).
        if version.event_id_is_hash() && host.has_event(&room_id, &event_id)? {
            log(host, LogLevel::Debug, || {
                format!("send_leave: {event_id} is already stored")
            });
            return Ok(Accepted {
                event_id,
                event: pdu,
                redacted: false,
                soft_failed: false,
                duplicate: true,
                relay_to: vec![],
            });
        }

        // Signatures of the sender's server (and, in versions 1 and 2, the event ID's
        // server), then the content hash.
        // A key's validity counts for at most a week past now, whatever it claims.
        let cap = host.now_ms().saturating_add(MAX_KEY_VALIDITY_MS);
        let check = event::verify_event_with(&pdu, &signed_bytes, version, &mut |s| {
            let mut keys = host.server_keys(s)?;
            for k in &mut keys {
                k.valid_until_ts = k.valid_until_ts.map(|v| v.min(cap));
            }
            Ok(keys)
        })?;
        if let Some(e) = check.signature_error {
            return Err(invalid(format!("signature check failed: {}", e.message)));
        }
        // `unsigned` is the sender's say alone (no hash or signature covers it): it is not
        // kept.
        let (stored, was_redacted) = if check.content_hash_valid {
            let mut pdu = pdu;
            if let Some(obj) = pdu.as_object_mut() {
                obj.remove("unsigned");
            }
            (pdu, false)
        } else {
            log(host, LogLevel::Warn, || {
                format!("send_leave: {event_id} has a wrong content hash; using its redacted copy")
            });
            // The check made the redacted copy already (the signature verified, the hash not).
            let redacted = match check.redacted {
                Some(r) => r,
                None => event::redact(&pdu, version)?,
            };
            (redacted, true)
        };

        // Auth: the listed auth events must be exactly an allowed selection, and the leave
        // must pass the auth rules against them.
        let auth_ids = ref_ids(stored.get("auth_events"), version, "auth_events")?;
        let mut auth_events = Vec::with_capacity(auth_ids.len());
        for id in &auth_ids {
            let ev = host.event(&room_id, id)?.ok_or_else(|| {
                Error::forbidden(format!(
                    "leave event was rejected: auth event {id} is not known in room {room_id}"
                ))
            })?;
            auth_events.push((id.clone(), ev));
        }
        let by_key = auth::check_auth_events(&stored, &auth_events, &room_id, version)?;
        let create_v12 = if version.create_in_auth_events {
            None
        } else {
            Some(self.v12_create(host, &room_id)?)
        };
        auth::check_leave(&stored, version, &mut |ty, sk| {
            if ty == "m.room.create" {
                if let Some(c) = &create_v12 {
                    return Ok(Some(&**c));
                }
            }
            Ok(by_key.get(&(ty, sk)).copied())
        })?;

        // Against the current state: a failure here soft-fails the event. A host that
        // cannot answer is a failure of its own, not a soft fail.
        let soft_failed = match auth::check_leave(&stored, version, &mut |ty, sk| {
            host.state_event(&room_id, ty, sk)
        }) {
            Ok(()) => false,
            Err(e) if e.code == Code::HostFailure => return Err(e),
            Err(_) => true,
        };

        // Everything that can fail comes before the store, so a stored event is never
        // answered with an error.
        let relay_to = if soft_failed {
            vec![]
        } else {
            let mut servers = servers;
            servers.retain(|s| s != origin && *s != self.server_name);
            servers.sort();
            servers.dedup();
            servers
        };
        // The same leave may be arriving on another thread right now: check again, under
        // this event ID's lock, that it is not stored yet, then store it.
        let stripe = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            event_id.hash(&mut h);
            (h.finish() as usize) % self.store_locks.len()
        };
        let _guard = self.store_locks[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = host.event(&room_id, &event_id)? {
            // In versions 1 and 2 an ID the sender chose may already name another event.
            if !version.event_id_is_hash()
                && event::reference_hash(&existing, version)? != reference
            {
                return Err(invalid(format!(
                    "event_id {event_id} already names a different event in room {room_id}"
                )));
            }
            return Ok(Accepted {
                event_id,
                event: stored,
                redacted: was_redacted,
                soft_failed,
                duplicate: true,
                relay_to: vec![],
            });
        }
        host.store_event(&room_id, &event_id, &stored, soft_failed)?;
        Ok(Accepted {
            event_id,
            event: stored,
            redacted: was_redacted,
            soft_failed,
            duplicate: false,
            relay_to,
        })
    }

    /// The create event of a version 12 room: the event whose ID the room ID is made from.
    fn v12_create(&self, host: &dyn ResidentHost, room_id: &str) -> Result<Arc<Value>, Error> {
        let create_id = format!("${}", room_id.trim_start_matches('!'));
        let create = host
            .event(room_id, &create_id)?
            .or(host.state_event(room_id, "m.room.create", "")?)
            .ok_or_else(|| Error::host(format!("the create event of room {room_id} is missing")))?;
        Ok(create)
    }
}

/// The event IDs in `prev_events` or `auth_events`.
fn ref_ids(v: Option<&Value>, version: &RoomVersion, field: &str) -> Result<Vec<String>, Error> {
    let arr = v
        .and_then(Value::as_array)
        .ok_or_else(|| Error::bad_json(format!("{field} must be an array")))?;
    arr.iter()
        .enumerate()
        .map(|(i, r)| {
            let id = if version.event_refs_are_pairs() {
                let pair = r.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                    Error::bad_json(format!(
                        "{field}[{i}] must be an [event_id, {{sha256}}] pair"
                    ))
                })?;
                if pair[1].as_object().is_none() {
                    return Err(Error::bad_json(format!(
                        "{field}[{i}][1] must be an object"
                    )));
                }
                pair[0].as_str()
            } else {
                r.as_str()
            };
            let id = id.ok_or_else(|| {
                Error::bad_json(format!("{field}[{i}] must hold an event ID string"))
            })?;
            if id.len() > MAX_ID_BYTES {
                return Err(Error::bad_json(format!(
                    "{field}[{i}] is {} bytes long; the limit is {MAX_ID_BYTES}",
                    id.len()
                )));
            }
            Ok(id.to_string())
        })
        .collect()
}

/// The format checks a PDU must pass before anything else looks at it: types, sizes and
/// the room version's integer rules. Failures are `400 M_BAD_JSON` naming the field.
pub fn check_format(pdu: &Value, version: &RoomVersion) -> Result<(), Error> {
    let obj = pdu.as_object().ok_or_else(|| {
        Error::bad_json(format!(
            "the event must be an object, not {}",
            pdu.type_name()
        ))
    })?;
    let string_field = |k: &str, required: bool| -> Result<(), Error> {
        match obj.get(k) {
            None if !required => Ok(()),
            None => Err(Error::bad_json(format!("{k} is missing"))),
            Some(Value::String(s)) if s.len() > MAX_ID_BYTES => Err(Error::bad_json(format!(
                "{k} is {} bytes long; the limit is {MAX_ID_BYTES}",
                s.len()
            ))),
            Some(Value::String(_)) => Ok(()),
            Some(other) => Err(Error::bad_json(format!(
                "{k} must be a string, not {}",
                other.type_name()
            ))),
        }
    };
    string_field("type", true)?;
    string_field("sender", true)?;
    string_field("room_id", true)?;
    string_field("state_key", false)?;
    string_field("origin", false)?;
    if version.event_id_is_hash() {
        if obj.contains_key("event_id") {
            return Err(Error::bad_json(format!(
                "event_id must not be present in room version {} events",
                version.id
            )));
        }
    } else {
        string_field("event_id", true)?;
    }
    match obj.get("content") {
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(Error::bad_json(format!(
                "content must be an object, not {}",
                other.type_name()
            )))
        }
        None => return Err(Error::bad_json("content is missing")),
    }
    // The PDU schema allows integers up to 2^63-1; canonical JSON narrows that to 2^53-1
    // from room version 6 on.
    let (max, max_text) = if version.strict_canonical_json {
        (json::MAX_SAFE_INTEGER, "2^53-1")
    } else {
        (i64::MAX, "2^63-1")
    };
    for k in ["depth", "origin_server_ts"] {
        match obj.get(k) {
            Some(Value::Int(i)) if (0..=max).contains(i) => {}
            Some(Value::Int(_)) | Some(Value::Number(_)) => {
                return Err(Error::bad_json(format!(
                    "{k} must be an integer from 0 to {max_text}"
                )))
            }
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{k} must be an integer, not {}",
                    other.type_name()
                )))
            }
            None => return Err(Error::bad_json(format!("{k} is missing"))),
        }
    }
    for (k, limit) in [
        ("auth_events", MAX_AUTH_EVENTS),
        ("prev_events", MAX_PREV_EVENTS),
    ] {
        let ids = ref_ids(obj.get(k), version, k)?;
        if ids.len() > limit {
            return Err(Error::bad_json(format!(
                "{k} lists {} events; the limit is {limit}",
                ids.len()
            )));
        }
    }
    for k in ["hashes", "signatures"] {
        match obj.get(k) {
            Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{k} must be an object, not {}",
                    other.type_name()
                )))
            }
            None => return Err(Error::bad_json(format!("{k} is missing"))),
        }
    }
    if let Some(u) = obj.get("unsigned") {
        if u.as_object().is_none() {
            return Err(Error::bad_json(format!(
                "unsigned must be an object, not {}",
                u.type_name()
            )));
        }
    }
    if version.strict_canonical_json {
        if let Some(path) = pdu.find_non_strict_number() {
            return Err(Error::bad_json(format!(
                "{path}: numbers must be integers within ±(2^53-1) in room version {}",
                version.id
            )));
        }
    }
    Ok(())
}
