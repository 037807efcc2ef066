//! Event hashes, redaction, event IDs and event signatures.
//!
//! These follow the server-server specification's sections "Calculating the content hash for
//! an event", "Calculating the reference hash for an event", "Adding hashes and signatures to
//! outgoing events" and "Validating hashes and signatures on received events", and the
//! redaction algorithm of each room version.

use sha2::{Digest, Sha256};

use crate::error::{Code, Error};
use crate::json::{Object, Value};
use crate::keys::{self, ServerKey, SigningKey};
use crate::version::{EventIdFormat, RoomVersion};

fn as_event(event: &Value) -> Result<&Object, Error> {
    event.as_object().ok_or_else(|| {
        Error::bad_json(format!(
            "the event must be an object, not {}",
            event.type_name()
        ))
    })
}

/// The SHA-256 content hash of an event: everything but `unsigned`, `signatures` and `hashes`.
pub fn content_hash(event: &Value) -> Result<[u8; 32], Error> {
    let obj = as_event(event)?;
    let mut out = Vec::with_capacity(1024);
    crate::json::write_object(
        obj.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "unsigned" | "signatures" | "hashes")),
        &mut out,
    );
    Ok(Sha256::digest(&out).into())
}

/// The content hash in unpadded base64, as it appears in `hashes.sha256`.
pub fn content_hash_b64(event: &Value) -> Result<String, Error> {
    Ok(keys::b64_encode(&content_hash(event)?))
}

/// Top-level keys that survive redaction in every room version.
const KEEP_ALWAYS: [&str; 12] = [
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
];

/// Top-level keys that survive redaction only before room version 11.
const KEEP_BEFORE_V11: [&str; 3] = ["origin", "membership", "prev_state"];

/// The redacted copy of an event, under the room version's redaction algorithm.
/// `unsigned` is removed, as the specification's algorithm says.
pub fn redact(event: &Value, version: &RoomVersion) -> Result<Value, Error> {
    let obj = as_event(event)?;
    let mut out = Object::new();
    for (k, v) in obj {
        let keep = KEEP_ALWAYS.contains(&k.as_str())
            || (!version.redaction_v11 && KEEP_BEFORE_V11.contains(&k.as_str()));
        if keep && k != "content" {
            out.insert(k.clone(), v.clone());
        }
    }
    let event_type = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let content = obj.get("content").and_then(Value::as_object);
    out.insert(
        "content".into(),
        Value::Object(match content {
            Some(c) => redact_content(event_type, c, version),
            None => Object::new(),
        }),
    );
    Ok(Value::Object(out))
}

fn redact_content(event_type: &str, content: &Object, v: &RoomVersion) -> Object {
    let keep: &[&str] = match event_type {
        "m.room.member" => &["membership"],
        "m.room.create" if v.redaction_v11 => return content.clone(),
        "m.room.create" => &["creator"],
        "m.room.join_rules" => &["join_rule"],
        "m.room.power_levels" => &[
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.aliases" if v.redaction_keeps_aliases => &["aliases"],
        "m.room.history_visibility" => &["history_visibility"],
        _ => &[],
    };
    let mut out: Object = content
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut keep_extra = |key: &str| {
        if let Some(val) = content.get(key) {
            out.insert(key.to_string(), val.clone());
        }
    };
    match event_type {
        "m.room.member" => {
            if v.redaction_keeps_join_authorised_via {
                keep_extra("join_authorised_via_users_server");
            }
            if v.redaction_v11 {
                // Room version 11: the signed part of a third-party invite survives; an
                // invite block without `signed` is kept as an empty object.
                if let Some(Value::Object(tpi)) = content.get("third_party_invite") {
                    let mut kept = Object::new();
                    if let Some(signed) = tpi.get("signed") {
                        kept.insert("signed".into(), signed.clone());
                    }
                    out.insert("third_party_invite".into(), Value::Object(kept));
                }
            }
        }
        "m.room.join_rules" if v.redaction_keeps_join_rule_allow => keep_extra("allow"),
        "m.room.power_levels" if v.redaction_v11 => keep_extra("invite"),
        "m.room.redaction" if v.redaction_v11 => keep_extra("redacts"),
        _ => {}
    }
    out
}

/// Canonical bytes of the redacted event without `signatures` and `unsigned`: both what the
/// origin signs and what the reference hash covers. Written straight from the event, without
/// building the redacted copy.
pub fn redacted_signing_bytes(event: &Value, version: &RoomVersion) -> Result<Vec<u8>, Error> {
    let obj = as_event(event)?;
    if !obj.contains_key("content") {
        // Redaction adds an empty content; take the long way for such an event.
        return keys::signing_bytes(&redact(event, version)?);
    }
    let event_type = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    let mut first = true;
    for (k, v) in obj {
        let keep = KEEP_ALWAYS.contains(&k.as_str())
            || (!version.redaction_v11 && KEEP_BEFORE_V11.contains(&k.as_str()));
        if !keep || k == "signatures" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        crate::json::write_string_to(k, &mut out);
        out.push(b':');
        if k == "content" {
            match v.as_object() {
                Some(c) => {
                    let kept = redact_content(event_type, c, version);
                    crate::json::write_object(kept.iter(), &mut out);
                }
                None => out.extend_from_slice(b"{}"),
            }
        } else {
            v.write_canonical(&mut out);
        }
    }
    out.push(b'}');
    Ok(out)
}

/// The SHA-256 reference hash of an event.
pub fn reference_hash(event: &Value, version: &RoomVersion) -> Result<[u8; 32], Error> {
    Ok(Sha256::digest(redacted_signing_bytes(event, version)?).into())
}

/// The event ID for a reference hash under this room version. `None` for versions 1 and 2,
/// whose IDs are not derived from the hash.
pub fn event_id_from_hash(hash: &[u8; 32], version: &RoomVersion) -> Option<String> {
    match version.event_id_format {
        EventIdFormat::InEvent => None,
        EventIdFormat::ReferenceHashStandard => Some(format!("${}", keys::b64_encode(hash))),
        EventIdFormat::ReferenceHashUrlSafe => Some(format!("${}", keys::b64url_encode(hash))),
    }
}

/// The ID of an event: the `event_id` it carries in versions 1 and 2, and `$` + its
/// reference hash from version 3 on.
pub fn event_id(event: &Value, version: &RoomVersion) -> Result<String, Error> {
    if version.event_id_format == EventIdFormat::InEvent {
        return event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::bad_json(format!(
                    "event_id: room version {} events must carry an event_id string",
                    version.id
                ))
            });
    }
    let hash = reference_hash(event, version)?;
    Ok(event_id_from_hash(&hash, version).unwrap_or_default())
}

/// The room ID a room version 12 create event defines: `!` + its URL-safe reference hash.
pub fn room_id_from_create_event(create: &Value) -> Result<String, Error> {
    if create.get("type").and_then(Value::as_str) != Some("m.room.create") {
        return Err(Error::invalid(
            "type: the event is not an m.room.create event",
        ));
    }
    let version_id = create
        .get("content")
        .and_then(|c| c.get("room_version"))
        .and_then(Value::as_str)
        .unwrap_or("12");
    let version = RoomVersion::require(version_id)?;
    if !version.room_id_from_create {
        return Err(Error::invalid(format!(
            "content.room_version: room version {version_id} does not derive room IDs from the create event"
        )));
    }
    let hash = reference_hash(create, version)?;
    Ok(format!("!{}", keys::b64url_encode(&hash)))
}

/// Adds the content hash and this server's signature to an event, as an origin server does.
/// Existing signatures are kept; `hashes.sha256` is replaced.
pub fn sign_event(
    event: &mut Value,
    version: &RoomVersion,
    server_name: &str,
    key: &SigningKey,
) -> Result<(), Error> {
    let hash = content_hash_b64(event)?;
    let obj = event
        .as_object_mut()
        .ok_or_else(|| Error::bad_json("the event must be an object"))?;
    let hashes = obj
        .entry("hashes".to_string())
        .or_insert_with(|| Value::Object(Object::new()));
    if !matches!(hashes, Value::Object(_)) {
        *hashes = Value::Object(Object::new());
    }
    if let Value::Object(h) = hashes {
        h.insert("sha256".into(), Value::String(hash));
    }
    let sig = key.sign_bytes(&redacted_signing_bytes(event, version)?);
    keys::add_signature(event, server_name, key.key_id(), sig)
}

/// The outcome of checking a received event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventCheck {
    /// Every required signature verified.
    pub signature_valid: bool,
    /// The content hash in `hashes.sha256` matched.
    pub content_hash_valid: bool,
    /// The content hash the event actually has, unpadded base64.
    pub computed_content_hash: String,
    /// When the signatures are good but the hash is not: the redacted copy to use instead.
    pub redacted: Option<Value>,
    /// Why the signature check failed, when it did.
    pub signature_error: Option<Error>,
}

impl EventCheck {
    /// `accept`, `redact` or `reject`.
    pub fn outcome(&self) -> &'static str {
        if !self.signature_valid {
            "reject"
        } else if !self.content_hash_valid {
            "redact"
        } else {
            "accept"
        }
    }
}

fn server_of(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, s)| s).filter(|s| !s.is_empty())
}

/// The servers whose signatures an event needs: the sender's server; in versions 1 and 2 also
/// the server in the event ID; for a join authorised through another server (versions 8+),
/// that server too.
pub fn required_signers(event: &Value, version: &RoomVersion) -> Result<Vec<String>, Error> {
    let sender = event
        .get("sender")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("sender must be a string"))?;
    let mut servers = vec![server_of(sender)
        .ok_or_else(|| Error::bad_json(format!("sender {sender:?} is not a user ID")))?
        .to_string()];
    if version.event_id_format == EventIdFormat::InEvent {
        if let Some(id) = event.get("event_id").and_then(Value::as_str) {
            let s = server_of(id)
                .ok_or_else(|| Error::bad_json(format!("event_id {id:?} has no server part")))?;
            if !servers.iter().any(|x| x == s) {
                servers.push(s.to_string());
            }
        }
    }
    if version.redaction_keeps_join_authorised_via
        && event.get("type").and_then(Value::as_str) == Some("m.room.member")
    {
        let content = event.get("content");
        let membership = content
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str);
        if membership == Some("join") {
            if let Some(via) = content
                .and_then(|c| c.get("join_authorised_via_users_server"))
                .and_then(Value::as_str)
            {
                if let Some(s) = server_of(via) {
                    if !servers.iter().any(|x| x == s) {
                        servers.push(s.to_string());
                    }
                }
            }
        }
    }
    Ok(servers)
}

/// Checks the signatures and content hash of a received event.
///
/// `keys_for` returns the known verify keys of a server. In room versions 5 and later a key
/// only counts when it was valid at the event's `origin_server_ts`.
pub fn verify_event(
    event: &Value,
    version: &RoomVersion,
    keys_for: &mut dyn FnMut(&str) -> Result<Vec<ServerKey>, Error>,
) -> Result<EventCheck, Error> {
    let signed = redacted_signing_bytes(event, version)?;
    verify_event_with(event, &signed, version, keys_for)
}

/// [`verify_event`] with the redacted signing bytes already computed.
pub(crate) fn verify_event_with(
    event: &Value,
    signed: &[u8],
    version: &RoomVersion,
    keys_for: &mut dyn FnMut(&str) -> Result<Vec<ServerKey>, Error>,
) -> Result<EventCheck, Error> {
    let ts = event.get("origin_server_ts").and_then(Value::as_i64);
    let mut signature_error = None;
    for server in required_signers(event, version)? {
        let known = keys_for(&server)?;
        let usable: Vec<(String, keys::VerifyKey)> = known
            .iter()
            .filter(|k| !version.enforce_key_validity || ts.is_some_and(|t| k.usable_at(t)))
            .map(|k| (k.key_id.clone(), k.key))
            .collect();
        if let Err(e) = keys::verify_signed_bytes(event, signed, &server, &usable) {
            let expired_only = usable.len() < known.len();
            let msg = if expired_only && !known.is_empty() {
                format!(
                    "{} (keys not valid at origin_server_ts are not used)",
                    e.message
                )
            } else {
                e.message
            };
            signature_error = Some(Error::new(Code::BadSignature, msg));
            break;
        }
    }
    let computed = content_hash(event)?;
    let claimed = event
        .get("hashes")
        .and_then(|h| h.get("sha256"))
        .and_then(Value::as_str)
        .and_then(keys::b64_decode);
    let content_hash_valid = claimed.as_deref() == Some(&computed[..]);
    let signature_valid = signature_error.is_none();
    let redacted = if signature_valid && !content_hash_valid {
        Some(redact(event, version)?)
    } else {
        None
    };
    Ok(EventCheck {
        signature_valid,
        content_hash_valid,
        computed_content_hash: keys::b64_encode(&computed),
        redacted,
        signature_error,
    })
}
