//! The C ABI of the crypto core: canonical JSON, hashes, redaction, IDs, signing keys, JSON and
//! event signatures, X-Matrix request authentication and server key documents.
//!
//! JSON inputs are parsed by the room version's rules: lenient for versions 1 to 5, strict for
//! the others and where no room version applies. JSON outputs are canonical JSON.

use std::ffi::c_char;
use std::ptr;

use crate::error::{Code, Error};
use crate::event;
use crate::json::{Mode, Object, Value};
use crate::keys::{self, ServerKey, SigningKey, VerifyKey};
use crate::xmatrix;

use super::{
    guard, guard_or, json_mode, mxl_bytes, mxl_error, optional_room_version_arg,
    optional_slice_arg, out_arg, parse_json, ref_arg, room_version_arg, slice_arg, str_arg,
};

// ---------------------------------------------------------------------------------------------
// Key sets given as JSON
// ---------------------------------------------------------------------------------------------

/// Reads one server's keys: `{"ed25519:x": "base64"}` or
/// `{"ed25519:x": {"key": "base64", "valid_until_ts": n, "expired_ts": n}}`, the validity
/// fields optional. Key IDs for other algorithms are skipped.
fn server_keys(value: &Value, path: &str) -> Result<Vec<ServerKey>, Error> {
    let entries = value
        .as_object()
        .ok_or_else(|| Error::invalid(format!("{path} must be an object of key IDs")))?;
    let mut out = Vec::with_capacity(entries.len());
    for (key_id, entry) in entries {
        if !key_id.starts_with("ed25519:") {
            continue;
        }
        let here = format!("{path}.{key_id}");
        let (text, valid_until_ts, expired_ts) = match entry {
            Value::String(text) => (text.as_str(), None, None),
            Value::Object(fields) => {
                let text = fields
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::invalid(format!("{here}.key must be a string")))?;
                let ts = |name: &str| match fields.get(name) {
                    None => Ok(None),
                    Some(v) => v
                        .as_i64()
                        .map(Some)
                        .ok_or_else(|| Error::invalid(format!("{here}.{name} must be an integer"))),
                };
                (text, ts("valid_until_ts")?, ts("expired_ts")?)
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{here} must be a base64 string or an object with a key"
                )))
            }
        };
        let key = VerifyKey::from_b64(text)
            .map_err(|e| Error::invalid(format!("{here}: {}", e.message)))?;
        out.push(ServerKey {
            key_id: key_id.clone(),
            key,
            valid_until_ts,
            expired_ts,
        });
    }
    Ok(out)
}

/// One server's keys without their validity, as JSON and request signatures use them.
fn plain_keys(value: &Value, path: &str) -> Result<Vec<(String, VerifyKey)>, Error> {
    Ok(server_keys(value, path)?
        .into_iter()
        .map(|k| (k.key_id, k.key))
        .collect())
}

/// Reads `{"server": {<keys as in server_keys>}}`.
fn keys_by_server(value: &Value, path: &str) -> Result<Vec<(String, Vec<ServerKey>)>, Error> {
    let servers = value
        .as_object()
        .ok_or_else(|| Error::invalid(format!("{path} must be an object of server names")))?;
    servers
        .iter()
        .map(|(server, keys)| {
            Ok((
                server.clone(),
                server_keys(keys, &format!("{path}.{server}"))?,
            ))
        })
        .collect()
}

/// A key list as `{"ed25519:x": {"key": ..., "valid_until_ts"?: ..., "expired_ts"?: ...}}`.
fn server_keys_to_json(keys: &[ServerKey]) -> Value {
    let mut out = Object::new();
    for k in keys {
        let mut entry = Object::new();
        entry.insert("key".into(), Value::from(k.key.to_b64()));
        if let Some(ts) = k.valid_until_ts {
            entry.insert("valid_until_ts".into(), Value::Int(ts));
        }
        if let Some(ts) = k.expired_ts {
            entry.insert("expired_ts".into(), Value::Int(ts));
        }
        out.insert(k.key_id.clone(), Value::Object(entry));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Canonical JSON, hashes, redaction and IDs
// ---------------------------------------------------------------------------------------------

/// Re-encodes JSON as canonical JSON: keys sorted by code point, no whitespace, the shortest
/// escapes.
///
/// - `json`, `json_len`: the JSON text (UTF-8).
/// - `room_version`: the room version whose number rules apply ("1" to "5" allow floats and
///   large integers), or NULL for the strict rules of version 6 and later.
/// - `out_bytes`: receives the canonical JSON; free it with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON when the text is not JSON or breaks the number
/// rules (the message names the field), MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_canonical_json(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json, version) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
                optional_room_version_arg(room_version, "room_version")?,
            )
        };

        let value = parse_json(json, json_mode(version), "json")?;

        *out = mxl_bytes::into_raw(value.to_canonical());
        Ok(())
    })
}

/// Computes an event's content hash (SHA-256 over the event without `unsigned`,
/// `signatures` and `hashes`), as it appears in `hashes.sha256`.
///
/// - `json`, `json_len`: the event JSON, parsed by the strict rules.
/// - `out_bytes`: receives the hash in unpadded standard base64; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON (not JSON, or not an object) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_content_hash(
    json: *const u8,
    json_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
            )
        };

        // The hash is the same whatever the room version; the lenient rules let it be
        // computed for version 1-5 events that carry floats.
        let event = parse_json(json, Mode::Lenient, "json")?;
        let hash = event::content_hash_b64(&event)?;

        *out = mxl_bytes::into_raw(hash);
        Ok(())
    })
}

/// Computes an event's reference hash: SHA-256 over the redacted event without `signatures`
/// and `unsigned`.
///
/// - `json`, `json_len`: the event JSON.
/// - `room_version`: the room version ("1" to "12"); required.
/// - `out_bytes`: receives the hash in unpadded standard base64; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_reference_hash(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            map_event(json, json_len, room_version, out_bytes, |event, version| {
                Ok(keys::b64_encode(&event::reference_hash(event, version)?).into_bytes())
            })
        }
    })
}

/// The ID of an event: the `event_id` it carries in room versions 1 and 2, and `$` followed
/// by its reference hash from version 3 on (standard base64 in version 3, URL-safe from 4).
///
/// - `json`, `json_len`: the event JSON.
/// - `room_version`: the room version ("1" to "12"); required.
/// - `out_bytes`: receives the event ID (UTF-8); free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON (including a version 1 or 2 event without an
/// `event_id` string), MXL_RESULT_UNSUPPORTED_ROOM_VERSION or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_event_id(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            map_event(json, json_len, room_version, out_bytes, |event, version| {
                Ok(event::event_id(event, version)?.into_bytes())
            })
        }
    })
}

/// The room ID that a room version 12 `m.room.create` event defines: `!` followed by its
/// reference hash in URL-safe unpadded base64.
///
/// - `json`, `json_len`: the create event JSON, parsed by the strict rules. Its
///   `content.room_version` must name a version that derives room IDs this way (12); a
///   missing `room_version` counts as "12".
/// - `out_bytes`: receives the room ID (UTF-8); free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_INVALID_PARAM (not a create event,
/// or an older room version), MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_room_id_from_create_event(
    json: *const u8,
    json_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
            )
        };

        let create = parse_json(json, Mode::Strict, "json")?;
        let room_id = event::room_id_from_create_event(&create)?;

        *out = mxl_bytes::into_raw(room_id);
        Ok(())
    })
}

/// Redacts an event under the room version's redaction algorithm (`unsigned` is removed
/// too).
///
/// - `json`, `json_len`: the event JSON.
/// - `room_version`: the room version ("1" to "12"); required.
/// - `out_bytes`: receives the redacted event as canonical JSON; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_redact(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            map_event(json, json_len, room_version, out_bytes, |event, version| {
                Ok(event::redact(event, version)?.to_canonical())
            })
        }
    })
}

// ---------------------------------------------------------------------------------------------
// mxl_signing_key
// ---------------------------------------------------------------------------------------------

/// An ed25519 signing key with its key ID (such as "ed25519:a_1").
///
/// Created by mxl_signing_key_from_seed or mxl_signing_key_generate; owned by the caller,
/// who frees it with mxl_signing_key_free. It never changes after creation, so one key may
/// be used from several threads at once.
#[expect(non_camel_case_types, reason = "the C name of the type")]
pub struct mxl_signing_key {
    /// The key; other FFI modules read it to sign.
    pub(crate) key: SigningKey,
    /// The key ID as a C string, handed out by mxl_signing_key_key_id.
    key_id: std::ffi::CString,
}

impl mxl_signing_key {
    fn into_raw(key: SigningKey) -> *mut mxl_signing_key {
        let key_id = super::c_string_lossy(key.key_id());
        Box::into_raw(Box::new(mxl_signing_key { key, key_id }))
    }
}

/// Makes a signing key from its 32-byte ed25519 seed.
///
/// - `seed`, `seed_len`: the seed; `seed_len` must be 32.
/// - `key_id`: the key ID, "ed25519:" followed by a version of letters, digits and `_`.
/// - `out_key`: receives the key; free it with mxl_signing_key_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_INVALID_PARAM (wrong seed length or key ID) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_from_seed(
    seed: *const u8,
    seed_len: usize,
    key_id: *const c_char,
    out_key: *mut *mut mxl_signing_key,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, seed, key_id) = unsafe {
            (
                out_arg(out_key, "out_key")?,
                slice_arg(seed, seed_len, "seed")?,
                str_arg(key_id, "key_id")?,
            )
        };

        let key = SigningKey::from_seed(seed, key_id)?;

        *out = mxl_signing_key::into_raw(key);
        Ok(())
    })
}

/// Generates a new random signing key from the operating system's random source.
///
/// - `key_id`: the key ID, "ed25519:" followed by a version of letters, digits and `_`.
/// - `out_key`: receives the key; free it with mxl_signing_key_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_INVALID_PARAM (bad key ID) or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_generate(
    key_id: *const c_char,
    out_key: *mut *mut mxl_signing_key,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, key_id) = unsafe { (out_arg(out_key, "out_key")?, str_arg(key_id, "key_id")?) };

        let key = SigningKey::generate(key_id)?;

        *out = mxl_signing_key::into_raw(key);
        Ok(())
    })
}

/// Frees a signing key. NULL is allowed and does nothing.
///
/// # Safety
///
/// `key` must be NULL or a key from this library that has not been freed yet, and no other
/// thread may be using it. It must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_free(key: *mut mxl_signing_key) {
    guard_or((), || {
        if !key.is_null() {
            // SAFETY: created by Box::into_raw in mxl_signing_key::into_raw, not freed yet.
            drop(unsafe { Box::from_raw(key) });
        }
    })
}

/// The key ID of a signing key, such as "ed25519:a_1".
///
/// Returns a NUL-terminated string owned by the key, valid until mxl_signing_key_free, or
/// NULL when `key` is NULL.
///
/// # Safety
///
/// `key` must be NULL or a live key from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_key_id(key: *const mxl_signing_key) -> *const c_char {
    guard_or(ptr::null(), || {
        // SAFETY: NULL or live, by the caller's contract.
        unsafe { key.as_ref() }.map_or(ptr::null(), |k| k.key_id.as_ptr())
    })
}

/// The public key of a signing key, for the `verify_keys` of a server key document.
///
/// - `key`: the signing key.
/// - `out_bytes`: receives the public key in unpadded standard base64; free with
///   mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_public_key(
    key: *const mxl_signing_key,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, key) = unsafe { (out_arg(out_bytes, "out_bytes")?, ref_arg(key, "key")?) };

        *out = mxl_bytes::into_raw(key.key.public_key_b64());
        Ok(())
    })
}

/// Copies the 32-byte seed of a signing key into `out_seed`, so the host can store it.
///
/// - `key`: the signing key.
/// - `out_seed`: 32 writable bytes.
///
/// Returns MXL_RESULT_OK, or MXL_RESULT_NULL_ARGUMENT when either pointer is NULL (then
/// nothing is written).
///
/// # Safety
///
/// `key` must be NULL or a live key; `out_seed` must be NULL or point to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_seed(
    key: *const mxl_signing_key,
    out_seed: *mut u8,
) -> Code {
    guard(ptr::null_mut(), || {
        // SAFETY: NULL or live, by the caller's contract.
        let key = unsafe { ref_arg(key, "key")? };
        if out_seed.is_null() {
            return Err(Error::new(Code::NullArgument, "out_seed must not be NULL"));
        }

        let seed = key.key.seed();

        // SAFETY: non-NULL and 32 bytes long by the caller's contract; [u8; 32] has
        // alignment 1.
        unsafe { out_seed.cast::<[u8; 32]>().write(seed) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// JSON and event signatures
// ---------------------------------------------------------------------------------------------

/// Signs a JSON object for a server, as the "Signing JSON" appendix describes: the
/// signature covers the canonical JSON of the object without `signatures` and `unsigned`,
/// and is added under `signatures.<server_name>.<key ID>`. Other signatures are kept.
///
/// - `key`: the signing key.
/// - `json`, `json_len`: the JSON object, parsed by the strict rules.
/// - `server_name`: the signing server's name.
/// - `out_bytes`: receives the signed object as canonical JSON; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_INVALID_PARAM (not an object) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_signing_key_sign_json(
    key: *const mxl_signing_key,
    json: *const u8,
    json_len: usize,
    server_name: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, key, json, server_name) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                ref_arg(key, "key")?,
                slice_arg(json, json_len, "json")?,
                str_arg(server_name, "server_name")?,
            )
        };

        let mut value = parse_json(json, Mode::Strict, "json")?;
        key.key.sign_json(&mut value, server_name)?;

        *out = mxl_bytes::into_raw(value.to_canonical());
        Ok(())
    })
}

/// Checks that a JSON object carries a valid signature from a server.
///
/// Signatures by other algorithms or by keys not in `keys_json` are ignored; at least one
/// signature by a listed key must remain, and every such signature must be valid.
///
/// - `json`, `json_len`: the signed JSON object, parsed by the strict rules.
/// - `server_name`: the server whose signature is required.
/// - `keys_json`, `keys_len`: the server's verify keys as a JSON object,
///   `{"ed25519:x": "base64"}`; an entry may also be `{"key": "base64", ...}`.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK when the signature is valid, MXL_RESULT_BAD_SIGNATURE when it is
/// missing or wrong, MXL_RESULT_BAD_JSON, MXL_RESULT_INVALID_PARAM (bad key set) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_verify_json(
    json: *const u8,
    json_len: usize,
    server_name: *const c_char,
    keys_json: *const u8,
    keys_len: usize,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (json, server_name, keys_json) = unsafe {
            (
                slice_arg(json, json_len, "json")?,
                str_arg(server_name, "server_name")?,
                slice_arg(keys_json, keys_len, "keys_json")?,
            )
        };

        let value = parse_json(json, Mode::Strict, "json")?;
        let keys = plain_keys(
            &parse_json(keys_json, Mode::Strict, "keys_json")?,
            "keys_json",
        )?;
        keys::verify_json(&value, server_name, &keys)
    })
}

/// Adds the content hash and a server's signature to an event, as its origin server does:
/// `hashes.sha256` is set, and the redacted event is signed under
/// `signatures.<server_name>.<key ID>`. Other signatures are kept.
///
/// - `json`, `json_len`: the event JSON.
/// - `room_version`: the room version ("1" to "12"); required.
/// - `server_name`: the signing server's name.
/// - `key`: the signing key.
/// - `out_bytes`: receives the signed event as canonical JSON; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_sign_event(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    server_name: *const c_char,
    key: *const mxl_signing_key,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json, version, server_name, key) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
                room_version_arg(room_version, "room_version")?,
                str_arg(server_name, "server_name")?,
                ref_arg(key, "key")?,
            )
        };

        let mut event = parse_json(json, version.json_mode(), "json")?;
        event::sign_event(&mut event, version, server_name, &key.key)?;

        *out = mxl_bytes::into_raw(event.to_canonical());
        Ok(())
    })
}

/// Checks the signatures and content hash of a received event and says what to do with it.
///
/// The signatures required are those of the sender's server, of the server in the event ID
/// for room versions 1 and 2, and of the authorising server of a restricted join (versions
/// 8 and later). From room version 5 on a key only counts when it was valid at the event's
/// `origin_server_ts`.
///
/// - `json`, `json_len`: the event JSON.
/// - `room_version`: the room version ("1" to "12"); required.
/// - `keys_json`, `keys_len`: the known verify keys by server,
///   `{"server": {"ed25519:x": "base64"}}`, where an entry may also be
///   `{"key": "base64", "valid_until_ts": n, "expired_ts": n}` (both times optional). The
///   output of mxl_verify_server_key_document fits here as one server's entry.
/// - `out_bytes`: receives the report as canonical JSON:
///   `{"signature_valid": bool, "content_hash_valid": bool,
///   "outcome": "accept" | "redact" | "reject", "computed_content_hash": "base64",
///   "redacted": {...}, "error": "..."}`, where `redacted` (the copy to keep instead) is
///   present for "redact" and `error` (why the signature check failed) for "reject". Free it
///   with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK whenever the report was made, whatever its outcome;
/// MXL_RESULT_BAD_JSON when the event cannot be checked (not JSON, no valid sender),
/// MXL_RESULT_INVALID_PARAM for a bad key set, MXL_RESULT_UNSUPPORTED_ROOM_VERSION or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_verify_event(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    keys_json: *const u8,
    keys_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json, version, keys_json) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
                room_version_arg(room_version, "room_version")?,
                slice_arg(keys_json, keys_len, "keys_json")?,
            )
        };

        let event = parse_json(json, version.json_mode(), "json")?;
        let known = keys_by_server(
            &parse_json(keys_json, Mode::Strict, "keys_json")?,
            "keys_json",
        )?;
        let mut keys_for = |server: &str| {
            Ok(known
                .iter()
                .find(|(name, _)| name == server)
                .map(|(_, keys)| keys.clone())
                .unwrap_or_default())
        };
        let check = event::verify_event(&event, version, &mut keys_for)?;

        let mut report = Object::new();
        report.insert("signature_valid".into(), Value::Bool(check.signature_valid));
        report.insert(
            "content_hash_valid".into(),
            Value::Bool(check.content_hash_valid),
        );
        report.insert("outcome".into(), Value::from(check.outcome()));
        report.insert(
            "computed_content_hash".into(),
            Value::from(check.computed_content_hash),
        );
        if let Some(redacted) = check.redacted {
            report.insert("redacted".into(), redacted);
        }
        if let Some(error) = check.signature_error {
            report.insert("error".into(), Value::from(error.message));
        }
        *out = mxl_bytes::into_raw(Value::Object(report).to_canonical());
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// X-Matrix request authentication
// ---------------------------------------------------------------------------------------------

/// Request bodies are parsed leniently: a request is authenticated before its room (and so
/// its room version) is known, and a body from a room of version 1 to 5 may hold floats.
/// Duplicate keys and malformed JSON are still refused.
const REQUEST_BODY_MODE: Mode = Mode::Lenient;

/// Builds the `Authorization` header value that signs an outgoing federation request:
/// `X-Matrix origin="...",key="...",sig="...",destination="..."`.
///
/// - `key`: this server's signing key.
/// - `origin`: this server's name.
/// - `destination`: the server the request goes to.
/// - `method`: the HTTP method, such as "PUT".
/// - `uri`: the request target exactly as it will be sent: path and query string,
///   percent-encoded, such as "/_matrix/federation/v2/send_leave/!r:x/$e".
/// - `content_json`, `content_len`: the JSON request body, or NULL / length 0 when the
///   request has none.
/// - `out_bytes`: receives the header value (without "Authorization: "); free with
///   mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON (bad body) or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_xmatrix_authorization(
    key: *const mxl_signing_key,
    origin: *const c_char,
    destination: *const c_char,
    method: *const c_char,
    uri: *const c_char,
    content_json: *const u8,
    content_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, key, origin, destination, method, uri, content) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                ref_arg(key, "key")?,
                str_arg(origin, "origin")?,
                str_arg(destination, "destination")?,
                str_arg(method, "method")?,
                str_arg(uri, "uri")?,
                optional_slice_arg(content_json, content_len, "content_json")?,
            )
        };

        let content = content
            .map(|c| parse_json(c, REQUEST_BODY_MODE, "content_json"))
            .transpose()?;
        let header =
            xmatrix::authorization(&key.key, origin, destination, method, uri, content.as_ref())?;

        *out = mxl_bytes::into_raw(header);
        Ok(())
    })
}

/// Parses an X-Matrix `Authorization` header value without checking its signature.
///
/// - `header`: the header value, such as `X-Matrix origin="a.example",key="ed25519:1",...`.
/// - `out_bytes`: receives canonical JSON `{"origin": ..., "key": ..., "sig": ...,
///   "destination": ...}`, `destination` only when the header names one; free with
///   mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_MALFORMED_AUTH (not X-Matrix, a parameter missing, or an
/// origin that is not a server name), MXL_RESULT_INVALID_PARAM (not UTF-8) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_xmatrix_parse(
    header: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, header) =
            unsafe { (out_arg(out_bytes, "out_bytes")?, str_arg(header, "header")?) };

        let parsed = xmatrix::parse(header)?;
        let mut fields = Object::new();
        fields.insert("origin".into(), Value::from(parsed.origin));
        fields.insert("key".into(), Value::from(parsed.key));
        fields.insert("sig".into(), Value::from(parsed.sig));
        if let Some(destination) = parsed.destination {
            fields.insert("destination".into(), Value::from(destination));
        }

        *out = mxl_bytes::into_raw(Value::Object(fields).to_canonical());
        Ok(())
    })
}

/// Authenticates an incoming federation request by its X-Matrix `Authorization` header.
///
/// - `header`: the `Authorization` header value.
/// - `method`: the HTTP method of the request.
/// - `uri`: the request target exactly as received: path and query string, still
///   percent-encoded.
/// - `content_json`, `content_len`: the JSON request body, or NULL / length 0 when the
///   request has none.
/// - `our_server_name`: this server's name. A header whose `destination` names another
///   server is refused; a header without `destination` is accepted.
/// - `keys_json`, `keys_len`: the origin server's verify keys, `{"ed25519:x": "base64"}`
///   (entries may also be `{"key": "base64", ...}`). Parse the header first with
///   mxl_xmatrix_parse to learn which server's keys to fetch.
/// - `out_bytes`: receives the authenticated origin server name (UTF-8); free with
///   mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_MALFORMED_AUTH (a malformed header, answered as 400
/// M_UNAUTHORIZED), MXL_RESULT_UNAUTHORIZED (wrong destination, unknown key or bad signature,
/// 401 M_UNAUTHORIZED), MXL_RESULT_BAD_JSON (bad body), MXL_RESULT_INVALID_PARAM (bad key
/// set) or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_xmatrix_verify(
    header: *const c_char,
    method: *const c_char,
    uri: *const c_char,
    content_json: *const u8,
    content_len: usize,
    our_server_name: *const c_char,
    keys_json: *const u8,
    keys_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, header, method, uri, content, our_name, keys_json) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                str_arg(header, "header")?,
                str_arg(method, "method")?,
                str_arg(uri, "uri")?,
                optional_slice_arg(content_json, content_len, "content_json")?,
                str_arg(our_server_name, "our_server_name")?,
                slice_arg(keys_json, keys_len, "keys_json")?,
            )
        };

        let content = content
            .map(|c| parse_json(c, REQUEST_BODY_MODE, "content_json"))
            .transpose()?;
        let keys = plain_keys(
            &parse_json(keys_json, Mode::Strict, "keys_json")?,
            "keys_json",
        )?;
        let origin = xmatrix::verify(header, method, uri, content.as_ref(), our_name, &mut |_| {
            Ok(keys.clone())
        })?;

        *out = mxl_bytes::into_raw(origin);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Server key documents
// ---------------------------------------------------------------------------------------------

/// Reads `{"ed25519:0": {"key": "base64", "expired_ts": n}}`.
fn old_keys(value: &Value) -> Result<Vec<(String, String, i64)>, Error> {
    let entries = value
        .as_object()
        .ok_or_else(|| Error::invalid("old_keys_json must be an object of key IDs"))?;
    let mut out = Vec::with_capacity(entries.len());
    for (key_id, entry) in entries {
        let here = format!("old_keys_json.{key_id}");
        let text = entry
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid(format!("{here}.key must be a string")))?;
        let key = VerifyKey::from_b64(text)
            .map_err(|e| Error::invalid(format!("{here}.key: {}", e.message)))?;
        let expired = entry
            .get("expired_ts")
            .and_then(Value::as_i64)
            .ok_or_else(|| Error::invalid(format!("{here}.expired_ts must be an integer")))?;
        out.push((key_id.clone(), key.to_b64(), expired));
    }
    Ok(out)
}

/// Builds and signs this server's key document, the body of `GET /_matrix/key/v2/server`.
///
/// - `key`: the current signing key; it goes into `verify_keys` and signs the document.
/// - `server_name`: this server's name.
/// - `valid_until_ts`: until when (milliseconds since the epoch) others may use the key.
/// - `old_keys_json`, `old_keys_len`: keys this server no longer uses,
///   `{"ed25519:0": {"key": "base64", "expired_ts": n}}`, or NULL / length 0 for none.
/// - `out_bytes`: receives the signed document as canonical JSON; free with mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_JSON, MXL_RESULT_INVALID_PARAM (a bad old key) or
/// MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_server_key_document(
    key: *const mxl_signing_key,
    server_name: *const c_char,
    valid_until_ts: i64,
    old_keys_json: *const u8,
    old_keys_len: usize,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, key, server_name, old_keys_json) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                ref_arg(key, "key")?,
                str_arg(server_name, "server_name")?,
                optional_slice_arg(old_keys_json, old_keys_len, "old_keys_json")?,
            )
        };

        let old = match old_keys_json {
            Some(text) => old_keys(&parse_json(text, Mode::Strict, "old_keys_json")?)?,
            None => Vec::new(),
        };
        let doc = keys::server_key_document(server_name, &key.key, valid_until_ts, &old)?;

        *out = mxl_bytes::into_raw(doc.to_canonical());
        Ok(())
    })
}

/// Checks a server key document (a `GET /_matrix/key/v2/server` response) and returns the
/// keys it vouches for.
///
/// The document must name `requested_server` and be signed by at least one of its own
/// `verify_keys`; `old_verify_keys` cannot vouch for it.
///
/// - `json`, `json_len`: the document, parsed by the strict rules.
/// - `requested_server`: the server whose keys were asked for.
/// - `out_bytes`: receives canonical JSON `{"ed25519:x": {"key": "base64",
///   "valid_until_ts": n}}` for current keys and `{"key": ..., "expired_ts": n}` for old
///   ones; this is the shape mxl_verify_event takes for one server. Free with
///   mxl_bytes_free.
/// - `out_error`: NULL, or receives an error to free with mxl_error_free on failure.
///
/// Returns MXL_RESULT_OK, MXL_RESULT_BAD_SIGNATURE (not self-signed), MXL_RESULT_INVALID_PARAM
/// (wrong server or malformed document), MXL_RESULT_BAD_JSON or MXL_RESULT_NULL_ARGUMENT.
///
/// # Safety
///
/// Pointers must be NULL or valid as described; inputs are only read during the call.
#[no_mangle]
pub unsafe extern "C" fn mxl_verify_server_key_document(
    json: *const u8,
    json_len: usize,
    requested_server: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    out_error: *mut *mut mxl_error,
) -> Code {
    guard(out_error, || {
        // SAFETY: the caller's contract covers every pointer.
        let (out, json, requested_server) = unsafe {
            (
                out_arg(out_bytes, "out_bytes")?,
                slice_arg(json, json_len, "json")?,
                str_arg(requested_server, "requested_server")?,
            )
        };

        let doc = parse_json(json, Mode::Strict, "json")?;
        let keys = keys::verify_server_key_document(&doc, requested_server)?;

        *out = mxl_bytes::into_raw(server_keys_to_json(&keys).to_canonical());
        Ok(())
    })
}

/// The shared body of the exports that turn one event of a room version into bytes: checks
/// the arguments, parses the event under the version's JSON rules, and hands `f`'s result
/// back through `out_bytes`.
///
/// # Safety
///
/// As for the exports that call it.
unsafe fn map_event(
    json: *const u8,
    json_len: usize,
    room_version: *const c_char,
    out_bytes: *mut *mut mxl_bytes,
    f: impl FnOnce(&Value, &crate::version::RoomVersion) -> Result<Vec<u8>, Error>,
) -> Result<(), Error> {
    // SAFETY: the caller's contract covers every pointer.
    let (out, json, version) = unsafe {
        (
            out_arg(out_bytes, "out_bytes")?,
            slice_arg(json, json_len, "json")?,
            room_version_arg(room_version, "room_version")?,
        )
    };
    let event = parse_json(json, version.json_mode(), "json")?;
    *out = mxl_bytes::into_raw(f(&event, version)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    const SEED: [u8; 32] = [7; 32];

    /// Runs an export that fills an mxl_bytes, returning the text or the error.
    fn call(
        f: impl FnOnce(*mut *mut mxl_bytes, *mut *mut mxl_error) -> Code,
    ) -> Result<String, (Code, String)> {
        let mut bytes = ptr::null_mut();
        let mut error = ptr::null_mut();
        let code = f(&mut bytes, &mut error);
        // SAFETY: the export left either bytes or an error, both freed here.
        unsafe {
            if code == Code::Ok {
                assert!(error.is_null());
                let text = std::str::from_utf8(std::slice::from_raw_parts(
                    super::super::mxl_bytes_data(bytes),
                    super::super::mxl_bytes_len(bytes),
                ))
                .unwrap()
                .to_string();
                super::super::mxl_bytes_free(bytes);
                Ok(text)
            } else {
                assert!(bytes.is_null());
                assert_eq!(super::super::mxl_error_code(error), code);
                let message = CStr::from_ptr(super::super::mxl_error_message(error))
                    .to_str()
                    .unwrap()
                    .to_string();
                super::super::mxl_error_free(error);
                Err((code, message))
            }
        }
    }

    fn key() -> *mut mxl_signing_key {
        let mut key = ptr::null_mut();
        // SAFETY: valid pointers.
        let code = unsafe {
            mxl_signing_key_from_seed(
                SEED.as_ptr(),
                32,
                c"ed25519:1".as_ptr(),
                &mut key,
                ptr::null_mut(),
            )
        };
        assert_eq!(code, Code::Ok);
        key
    }

    #[test]
    fn canonical_json_follows_the_room_version() {
        let text = br#"{"b": 1.5, "a": [true, null]}"#;
        let strict = call(|o, e| unsafe {
            mxl_canonical_json(text.as_ptr(), text.len(), ptr::null(), o, e)
        });
        let (code, message) = strict.unwrap_err();
        assert_eq!(code, Code::BadJson);
        assert!(
            message.starts_with("json: float_not_allowed at field b"),
            "{message}"
        );
        let lenient = call(|o, e| unsafe {
            mxl_canonical_json(text.as_ptr(), text.len(), c"5".as_ptr(), o, e)
        });
        assert_eq!(lenient.unwrap(), r#"{"a":[true,null],"b":1.5}"#);
        let unknown = call(|o, e| unsafe {
            mxl_canonical_json(text.as_ptr(), text.len(), c"13".as_ptr(), o, e)
        });
        assert_eq!(unknown.unwrap_err().0, Code::UnsupportedRoomVersion);
        let null = call(|o, e| unsafe { mxl_canonical_json(ptr::null(), 4, ptr::null(), o, e) });
        assert_eq!(
            null.unwrap_err(),
            (Code::NullArgument, "json must not be NULL".to_string())
        );
        let missing_out = unsafe {
            mxl_canonical_json(
                text.as_ptr(),
                text.len(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        assert_eq!(missing_out, Code::NullArgument);
    }

    #[test]
    fn outputs_are_null_after_a_bad_input() {
        let mut bytes = ptr::NonNull::<mxl_bytes>::dangling().as_ptr();
        // SAFETY: the NULL input is refused before anything is read; `bytes` is only written.
        let code =
            unsafe { mxl_redact(ptr::null(), 4, c"10".as_ptr(), &mut bytes, ptr::null_mut()) };
        assert_eq!(code, Code::NullArgument);
        assert!(bytes.is_null());
    }

    #[test]
    fn signed_events_verify_and_tampering_is_caught() {
        let key = key();
        let event = br#"{"type":"m.room.member","state_key":"@u:a.example","sender":"@u:a.example","room_id":"!r:a.example","content":{"membership":"leave"},"origin_server_ts":5,"depth":3,"prev_events":[],"auth_events":[]}"#;
        let signed = call(|o, e| unsafe {
            mxl_sign_event(
                event.as_ptr(),
                event.len(),
                c"10".as_ptr(),
                c"a.example".as_ptr(),
                key,
                o,
                e,
            )
        })
        .unwrap();
        let public = call(|o, e| unsafe { mxl_signing_key_public_key(key, o, e) }).unwrap();
        let keys = format!(r#"{{"a.example":{{"ed25519:1":"{public}"}}}}"#);
        let verify = |event: &str| {
            call(|o, e| unsafe {
                mxl_verify_event(
                    event.as_ptr(),
                    event.len(),
                    c"10".as_ptr(),
                    keys.as_ptr(),
                    keys.len(),
                    o,
                    e,
                )
            })
            .unwrap()
        };
        let report = verify(&signed);
        assert!(report.contains(r#""outcome":"accept""#), "{report}");
        let tampered = signed.replace(r#""depth":3"#, r#""depth":3,"extra":1"#);
        assert!(verify(&tampered).contains(r#""outcome":"redact""#));
        let forged = signed.replace(r#""depth":3"#, r#""depth":4"#);
        let report = verify(&forged);
        assert!(
            report.contains(r#""outcome":"reject""#) && report.contains(r#""error":"#),
            "{report}"
        );

        let id = call(|o, e| unsafe {
            mxl_event_id(signed.as_ptr(), signed.len(), c"10".as_ptr(), o, e)
        })
        .unwrap();
        let hash = call(|o, e| unsafe {
            mxl_reference_hash(signed.as_ptr(), signed.len(), c"10".as_ptr(), o, e)
        })
        .unwrap();
        assert_eq!(id.len(), 44);
        assert_eq!(id[1..], hash.replace('+', "-").replace('/', "_"));
        unsafe { mxl_signing_key_free(key) };
    }

    #[test]
    fn json_signatures_round_trip() {
        let key = key();
        let object = br#"{"a":1}"#;
        let signed = call(|o, e| unsafe {
            mxl_signing_key_sign_json(
                key,
                object.as_ptr(),
                object.len(),
                c"a.example".as_ptr(),
                o,
                e,
            )
        })
        .unwrap();
        let public = call(|o, e| unsafe { mxl_signing_key_public_key(key, o, e) }).unwrap();
        let keys = format!(r#"{{"ed25519:1":"{public}"}}"#);
        let check = |json: &str, server: &CStr| unsafe {
            mxl_verify_json(
                json.as_ptr(),
                json.len(),
                server.as_ptr(),
                keys.as_ptr(),
                keys.len(),
                ptr::null_mut(),
            )
        };
        assert_eq!(check(&signed, c"a.example"), Code::Ok);
        assert_eq!(check(&signed, c"b.example"), Code::BadSignature);
        assert_eq!(
            check(&signed.replace(r#""a":1"#, r#""a":2"#), c"a.example"),
            Code::BadSignature
        );

        let mut seed = [0u8; 32];
        assert_eq!(
            unsafe { mxl_signing_key_seed(key, seed.as_mut_ptr()) },
            Code::Ok
        );
        assert_eq!(seed, SEED);
        assert_eq!(
            unsafe { mxl_signing_key_seed(key, ptr::null_mut()) },
            Code::NullArgument
        );
        let id = unsafe { CStr::from_ptr(mxl_signing_key_key_id(key)) };
        assert_eq!(id.to_str().unwrap(), "ed25519:1");
        unsafe { mxl_signing_key_free(key) };
        unsafe { mxl_signing_key_free(ptr::null_mut()) };
    }

    #[test]
    fn bad_key_ids_and_seeds_are_refused() {
        let mut key = ptr::null_mut();
        let code =
            unsafe { mxl_signing_key_generate(c"rsa:1".as_ptr(), &mut key, ptr::null_mut()) };
        assert_eq!(code, Code::InvalidParam);
        assert!(key.is_null());
        let code = unsafe {
            mxl_signing_key_from_seed(
                SEED.as_ptr(),
                31,
                c"ed25519:1".as_ptr(),
                &mut key,
                ptr::null_mut(),
            )
        };
        assert_eq!(code, Code::InvalidParam);
        let code =
            unsafe { mxl_signing_key_generate(c"ed25519:x".as_ptr(), &mut key, ptr::null_mut()) };
        assert_eq!(code, Code::Ok);
        unsafe { mxl_signing_key_free(key) };
    }

    #[test]
    fn xmatrix_round_trip() {
        let key = key();
        let body = br#"{"x":1}"#;
        let uri = c"/_matrix/federation/v1/make_leave/!r:b.example/@u:a.example";
        let header = call(|o, e| unsafe {
            mxl_xmatrix_authorization(
                key,
                c"a.example".as_ptr(),
                c"b.example".as_ptr(),
                c"PUT".as_ptr(),
                uri.as_ptr(),
                body.as_ptr(),
                body.len(),
                o,
                e,
            )
        })
        .unwrap();
        let header = std::ffi::CString::new(header).unwrap();
        let parsed = call(|o, e| unsafe { mxl_xmatrix_parse(header.as_ptr(), o, e) }).unwrap();
        assert!(
            parsed.contains(r#""destination":"b.example""#)
                && parsed.contains(r#""origin":"a.example""#)
        );
        let public = call(|o, e| unsafe { mxl_signing_key_public_key(key, o, e) }).unwrap();
        let keys = format!(r#"{{"ed25519:1":"{public}"}}"#);
        let verify = |body: &[u8], us: &CStr| {
            call(|o, e| unsafe {
                mxl_xmatrix_verify(
                    header.as_ptr(),
                    c"PUT".as_ptr(),
                    uri.as_ptr(),
                    body.as_ptr(),
                    body.len(),
                    us.as_ptr(),
                    keys.as_ptr(),
                    keys.len(),
                    o,
                    e,
                )
            })
        };
        assert_eq!(verify(body, c"b.example").unwrap(), "a.example");
        assert_eq!(
            verify(br#"{"x":2}"#, c"b.example").unwrap_err().0,
            Code::Unauthorized
        );
        assert_eq!(verify(b"", c"b.example").unwrap_err().0, Code::Unauthorized);
        assert_eq!(
            verify(body, c"c.example").unwrap_err().0,
            Code::Unauthorized
        );
        let malformed = call(|o, e| unsafe { mxl_xmatrix_parse(c"Bearer x".as_ptr(), o, e) });
        assert_eq!(malformed.unwrap_err().0, Code::MalformedAuth);
        unsafe { mxl_signing_key_free(key) };
    }

    #[test]
    fn server_key_documents_round_trip() {
        let key = key();
        let old = br#"{"ed25519:0":{"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","expired_ts":10}}"#;
        let doc = call(|o, e| unsafe {
            mxl_server_key_document(
                key,
                c"a.example".as_ptr(),
                99,
                old.as_ptr(),
                old.len(),
                o,
                e,
            )
        });
        let doc = doc.unwrap();
        let keys = call(|o, e| unsafe {
            mxl_verify_server_key_document(doc.as_ptr(), doc.len(), c"a.example".as_ptr(), o, e)
        });
        let keys = keys.unwrap();
        assert!(
            keys.contains(r#""ed25519:0":{"expired_ts":10,"key":"#),
            "{keys}"
        );
        assert!(keys.contains(r#""valid_until_ts":99"#), "{keys}");
        let wrong = call(|o, e| unsafe {
            mxl_verify_server_key_document(doc.as_ptr(), doc.len(), c"b.example".as_ptr(), o, e)
        });
        assert_eq!(wrong.unwrap_err().0, Code::InvalidParam);
        unsafe { mxl_signing_key_free(key) };
    }

    #[test]
    fn hashes_redaction_and_room_ids() {
        let event = br#"{"type":"m.room.create","sender":"@c:a.example","content":{"room_version":"12","x":1},"origin_server_ts":1,"depth":1,"prev_events":[],"auth_events":[],"state_key":"","unsigned":{"age":1}}"#;
        let hash =
            call(|o, e| unsafe { mxl_content_hash(event.as_ptr(), event.len(), o, e) }).unwrap();
        assert_eq!(hash.len(), 43);
        let redacted =
            call(|o, e| unsafe { mxl_redact(event.as_ptr(), event.len(), c"12".as_ptr(), o, e) })
                .unwrap();
        assert!(
            redacted.contains(r#""x":1"#) && !redacted.contains("unsigned"),
            "{redacted}"
        );
        let room = call(|o, e| unsafe {
            mxl_room_id_from_create_event(event.as_ptr(), event.len(), o, e)
        })
        .unwrap();
        assert!(room.starts_with('!') && room.len() == 44, "{room}");
        let not_object = b"[]";
        let e = call(|o, e| unsafe { mxl_content_hash(not_object.as_ptr(), 2, o, e) });
        assert_eq!(e.unwrap_err().0, Code::BadJson);
    }

    #[test]
    fn keys_json_is_checked() {
        let v = |s: &str| Value::parse(s.as_bytes(), Mode::Strict).unwrap();
        let e = server_keys(&v(r#"{"ed25519:1":"!!"}"#), "keys_json").unwrap_err();
        assert_eq!(e.code, Code::InvalidParam);
        assert!(
            e.message.starts_with("keys_json.ed25519:1: "),
            "{}",
            e.message
        );
        let e = server_keys(&v(r#"{"ed25519:1":{"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","expired_ts":"x"}}"#), "k")
            .unwrap_err();
        assert_eq!(e.message, "k.ed25519:1.expired_ts must be an integer");
        assert!(server_keys(&v(r#"{"curve:1":5}"#), "k").unwrap().is_empty());
    }
}
