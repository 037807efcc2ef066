//! ed25519 signing keys, JSON signatures and server key documents.
//!
//! Signing follows the specification's "Signing JSON" appendix: the `signatures` and
//! `unsigned` members are removed, the rest is encoded as canonical JSON, and the ed25519
//! signature of those bytes is added under `signatures[server][key_id]` in unpadded base64.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};

use crate::error::{Code, Error};
use crate::json::{Object, Value};

/// Unpadded standard base64 for output.
const B64_OUT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

/// Unpadded URL-safe base64 for output (event IDs from room version 4 on).
const B64_URL_OUT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);

/// Standard base64 for input: padding optional, and non-zero trailing bits accepted, as the
/// specification's own printed test seed has them.
const B64_IN: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes bytes as unpadded standard base64.
pub fn b64_encode(bytes: &[u8]) -> String {
    B64_OUT.encode(bytes)
}

/// Encodes bytes as unpadded URL-safe base64.
pub fn b64url_encode(bytes: &[u8]) -> String {
    B64_URL_OUT.encode(bytes)
}

/// Decodes standard base64, padded or not.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    B64_IN.decode(text).ok()
}

/// An ed25519 signing key with its key ID (`ed25519:<version>`).
#[derive(Clone)]
pub struct SigningKey {
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_b64())
            .finish()
    }
}

fn check_key_id(key_id: &str) -> Result<(), Error> {
    let Some((alg, version)) = key_id.split_once(':') else {
        return Err(Error::invalid(format!(
            "key_id {key_id:?} must have the form ed25519:<version>"
        )));
    };
    let version_ok = !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if alg != "ed25519" || !version_ok {
        return Err(Error::invalid(format!(
            "key_id {key_id:?} must have the form ed25519:<version> with a version of [a-zA-Z0-9_]"
        )));
    }
    Ok(())
}

impl SigningKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8], key_id: &str) -> Result<SigningKey, Error> {
        check_key_id(key_id)?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::invalid(format!("seed must be 32 bytes, got {}", seed.len())))?;
        Ok(SigningKey {
            key_id: key_id.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// A key from its seed in base64 (the printed form in Synapse's key files and the spec).
    pub fn from_seed_b64(seed: &str, key_id: &str) -> Result<SigningKey, Error> {
        let bytes = b64_decode(seed).ok_or_else(|| Error::invalid("seed is not valid base64"))?;
        SigningKey::from_seed(&bytes, key_id)
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(key_id: &str) -> Result<SigningKey, Error> {
        check_key_id(key_id)?;
        let mut seed = [0u8; 32];
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut seed)
            .map_err(|e| Error::host(format!("the system random generator failed: {e}")))?;
        Ok(SigningKey {
            key_id: key_id.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The key ID, such as `ed25519:1`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key in unpadded base64.
    pub fn public_key_b64(&self) -> String {
        b64_encode(self.key.verifying_key().as_bytes())
    }

    /// The public key as a [`VerifyKey`].
    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey {
            key: self.key.verifying_key(),
        }
    }

    /// Signs raw bytes, returning the signature in unpadded base64.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        b64_encode(&self.key.sign(bytes).to_bytes())
    }

    /// Signs a JSON object in place for `server_name`, keeping other signatures.
    pub fn sign_json(&self, value: &mut Value, server_name: &str) -> Result<(), Error> {
        let sig = self.sign_bytes(&signing_bytes(value)?);
        add_signature(value, server_name, &self.key_id, sig)
    }
}

/// Adds `signatures[server][key_id] = sig` to an object.
pub(crate) fn add_signature(
    value: &mut Value,
    server_name: &str,
    key_id: &str,
    sig: String,
) -> Result<(), Error> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| Error::invalid("only a JSON object can be signed"))?;
    let sigs = obj
        .entry("signatures".to_string())
        .or_insert_with(|| Value::Object(Object::new()));
    if !matches!(sigs, Value::Object(_)) {
        *sigs = Value::Object(Object::new());
    }
    let Value::Object(sigs) = sigs else {
        return Err(Error::invalid("signatures must be an object"));
    };
    let entry = sigs
        .entry(server_name.to_string())
        .or_insert_with(|| Value::Object(Object::new()));
    if !matches!(entry, Value::Object(_)) {
        *entry = Value::Object(Object::new());
    }
    if let Value::Object(m) = entry {
        m.insert(key_id.to_string(), Value::String(sig));
    }
    Ok(())
}

/// The canonical bytes that are signed: the object without `signatures` and `unsigned`.
pub fn signing_bytes(value: &Value) -> Result<Vec<u8>, Error> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::invalid("only a JSON object can be signed"))?;
    let mut out = Vec::with_capacity(512);
    crate::json::write_object(
        obj.iter()
            .filter(|(k, _)| k.as_str() != "signatures" && k.as_str() != "unsigned"),
        &mut out,
    );
    Ok(out)
}

/// The ed25519 code this process verifies with: `"avx512ifma"`, `"avx2"` or `"serial"`.
///
/// curve25519-dalek chooses at run time from the CPU's features among the code it was
/// compiled with. On x86_64 its AVX2 code is compiled unless the build asks for the portable
/// code (`curve25519_dalek_backend` `serial` or `fiat`); its AVX-512 IFMA code is compiled
/// with `--cfg curve25519_dalek_backend="avx512"` (which this repository's
/// `.cargo/config.toml` sets) or, without any backend cfg, when the build targets a CPU with
/// AVX-512 IFMA and VL.
pub fn ed25519_backend() -> &'static str {
    if cfg!(any(
        curve25519_dalek_backend = "serial",
        curve25519_dalek_backend = "fiat"
    )) {
        return "serial";
    }
    #[cfg(target_arch = "x86_64")]
    {
        let ifma_compiled = cfg!(curve25519_dalek_backend = "avx512")
            || (!cfg!(curve25519_dalek_backend = "simd")
                && cfg!(all(
                    target_feature = "avx512ifma",
                    target_feature = "avx512vl"
                )));
        if ifma_compiled
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// A decoded ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    key: ed25519_dalek::VerifyingKey,
}

impl VerifyKey {
    /// Decodes a public key from unpadded (or padded) standard base64.
    pub fn from_b64(text: &str) -> Result<VerifyKey, Error> {
        let bytes =
            b64_decode(text).ok_or_else(|| Error::invalid("verify key is not valid base64"))?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::invalid(format!("verify key must be 32 bytes, got {}", bytes.len()))
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|_| Error::invalid("verify key is not a valid ed25519 point"))?;
        // A small-order key would accept forged signatures; libsodium refuses such keys too.
        if key.is_weak() {
            return Err(Error::invalid("verify key is a small-order (weak) point"));
        }
        Ok(VerifyKey { key })
    }

    /// The key in unpadded base64.
    pub fn to_b64(&self) -> String {
        b64_encode(self.key.as_bytes())
    }

    /// Checks a base64 signature over `bytes`.
    pub fn verify(&self, bytes: &[u8], sig_b64: &str) -> Result<(), String> {
        let sig = b64_decode(sig_b64).ok_or("the signature is not valid base64")?;
        let sig: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| format!("the signature must be 64 bytes, got {}", sig.len()))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        // Weak keys are refused when decoded and non-canonical scalars by the check itself;
        // that leaves strict mode's extra decompression of R, which buys no protection here.
        self.key
            .verify(bytes, &sig)
            .map_err(|_| "the signature does not match".to_string())
    }
}

/// Verifies that `value` carries a valid signature from `server_name`.
///
/// Signatures whose key ID names an algorithm other than ed25519, or a key not in
/// `keys`, are ignored. The check fails when no usable signature remains, and never passes
/// with an empty key set. One valid signature from a known key is enough; a known key whose
/// signature is wrong fails the check.
pub fn verify_json(
    value: &Value,
    server_name: &str,
    keys: &[(String, VerifyKey)],
) -> Result<(), Error> {
    let bytes = signing_bytes(value)?;
    verify_signed_bytes(value, &bytes, server_name, keys)
}

/// Like [`verify_json`], with the signed bytes already computed.
pub(crate) fn verify_signed_bytes(
    value: &Value,
    bytes: &[u8],
    server_name: &str,
    keys: &[(String, VerifyKey)],
) -> Result<(), Error> {
    let sigs = value
        .get("signatures")
        .and_then(|s| s.get(server_name))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Error::new(
                Code::BadSignature,
                format!("signatures: no signatures from {server_name}"),
            )
        })?;
    let mut checked = 0;
    for (key_id, sig) in sigs {
        if !key_id.starts_with("ed25519:") {
            continue;
        }
        let Some((_, key)) = keys.iter().find(|(id, _)| id == key_id) else {
            continue;
        };
        let sig = sig.as_str().ok_or_else(|| {
            Error::new(
                Code::BadSignature,
                format!("signatures.{server_name}.{key_id} must be a string"),
            )
        })?;
        key.verify(bytes, sig).map_err(|why| {
            Error::new(
                Code::BadSignature,
                format!("signatures.{server_name}.{key_id}: {why}"),
            )
        })?;
        checked += 1;
    }
    if checked == 0 {
        return Err(Error::new(
            Code::BadSignature,
            format!(
                "signatures.{server_name}: no signature from a known key with a supported algorithm"
            ),
        ));
    }
    Ok(())
}

/// A verify key of a remote server with its validity, as a key store hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerKey {
    /// The key ID, such as `ed25519:abc`.
    pub key_id: String,
    /// The decoded key.
    pub key: VerifyKey,
    /// For a current key: the time (ms) until which it may be used.
    pub valid_until_ts: Option<i64>,
    /// For an old key: the time (ms) at which it stopped being used.
    pub expired_ts: Option<i64>,
}

impl ServerKey {
    /// Whether this key may verify an event with this `origin_server_ts`, in a room version
    /// that enforces key validity. An old key is good for events before its `expired_ts`.
    pub fn usable_at(&self, ts: i64) -> bool {
        match (self.valid_until_ts, self.expired_ts) {
            (_, Some(expired)) => ts < expired,
            (Some(until), None) => ts <= until,
            (None, None) => true,
        }
    }
}

/// Builds and signs a `/_matrix/key/v2/server` response.
///
/// `old_keys` lists `(key_id, public key base64, expired_ts)`.
pub fn server_key_document(
    server_name: &str,
    key: &SigningKey,
    valid_until_ts: i64,
    old_keys: &[(String, String, i64)],
) -> Result<Value, Error> {
    let mut verify_keys = Object::new();
    verify_keys.insert(
        key.key_id().to_string(),
        crate::json::object([("key", Value::from(key.public_key_b64()))]),
    );
    let mut old = Object::new();
    for (id, public, expired) in old_keys {
        old.insert(
            id.clone(),
            crate::json::object([
                ("expired_ts", Value::Int(*expired)),
                ("key", Value::from(public.as_str())),
            ]),
        );
    }
    let mut doc = crate::json::object([
        ("old_verify_keys", Value::Object(old)),
        ("server_name", Value::from(server_name)),
        ("valid_until_ts", Value::Int(valid_until_ts)),
        ("verify_keys", Value::Object(verify_keys)),
    ]);
    key.sign_json(&mut doc, server_name)?;
    Ok(doc)
}

fn key_field<'a>(doc: &'a Value, path: &str) -> Result<&'a Object, Error> {
    doc.get(path)
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(format!("{path} must be an object")))
}

/// Checks a `/_matrix/key/v2/server` response for `requested_server` and returns its usable
/// keys: current keys with `valid_until_ts`, old keys with `expired_ts`.
///
/// The document must name the requested server and carry a valid self-signature by at
/// least one key listed in `verify_keys`; old keys cannot vouch for the document.
pub fn verify_server_key_document(
    doc: &Value,
    requested_server: &str,
) -> Result<Vec<ServerKey>, Error> {
    let name = doc
        .get("server_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("server_name must be a string"))?;
    if name != requested_server {
        return Err(Error::invalid(format!(
            "server_name {name:?} does not match the requested server {requested_server:?}"
        )));
    }
    let valid_until = doc
        .get("valid_until_ts")
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::invalid("valid_until_ts must be an integer"))?;
    let mut current = Vec::new();
    for (id, entry) in key_field(doc, "verify_keys")? {
        let text = entry
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid(format!("verify_keys.{id}.key must be a string")))?;
        if !id.starts_with("ed25519:") {
            continue;
        }
        current.push(ServerKey {
            key_id: id.clone(),
            key: VerifyKey::from_b64(text)
                .map_err(|e| Error::invalid(format!("verify_keys.{id}.key: {}", e.message)))?,
            valid_until_ts: Some(valid_until),
            expired_ts: None,
        });
    }
    let pairs: Vec<(String, VerifyKey)> =
        current.iter().map(|k| (k.key_id.clone(), k.key)).collect();
    if pairs.is_empty() {
        return Err(Error::invalid("verify_keys lists no ed25519 key"));
    }
    verify_json(doc, requested_server, &pairs).map_err(|e| {
        Error::new(
            Code::BadSignature,
            format!(
                "not signed by any key listed in verify_keys ({})",
                e.message
            ),
        )
    })?;
    let mut keys = current;
    if let Some(old) = doc.get("old_verify_keys") {
        let old = old
            .as_object()
            .ok_or_else(|| Error::invalid("old_verify_keys must be an object"))?;
        for (id, entry) in old {
            if !id.starts_with("ed25519:") {
                continue;
            }
            let text = entry.get("key").and_then(Value::as_str).ok_or_else(|| {
                Error::invalid(format!("old_verify_keys.{id}.key must be a string"))
            })?;
            let expired = entry
                .get("expired_ts")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "old_verify_keys.{id}.expired_ts must be an integer"
                    ))
                })?;
            keys.push(ServerKey {
                key_id: id.clone(),
                key: VerifyKey::from_b64(text).map_err(|e| {
                    Error::invalid(format!("old_verify_keys.{id}.key: {}", e.message))
                })?,
                valid_until_ts: None,
                expired_ts: Some(expired),
            });
        }
    }
    Ok(keys)
}
