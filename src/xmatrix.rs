//! X-Matrix request authentication (server-server API, "Request Authentication").
//!
//! A request is signed as the JSON object `{method, uri, origin, destination, content?}`,
//! where `uri` is the request target exactly as sent (path and query, percent-encoded), and the
//! signature travels in `Authorization: X-Matrix origin="…",key="…",sig="…",destination="…"`.

use crate::error::{Code, Error};
use crate::json::{Object, Value};
use crate::keys::{self, SigningKey, VerifyKey};

/// Looks up the verify keys (key ID, key) of a server.
pub type KeyLookup<'a> = dyn FnMut(&str) -> Result<Vec<(String, VerifyKey)>, Error> + 'a;

/// The parameters of an X-Matrix `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XMatrix {
    /// The requesting server.
    pub origin: String,
    /// The server the request is for, when the header names one.
    pub destination: Option<String>,
    /// The key ID that signed the request.
    pub key: String,
    /// The signature, unpadded base64.
    pub sig: String,
}

fn request_object(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Value>,
) -> Value {
    let mut obj = Object::new();
    obj.insert("method".into(), Value::from(method));
    obj.insert("uri".into(), Value::from(uri));
    obj.insert("origin".into(), Value::from(origin));
    obj.insert("destination".into(), Value::from(destination));
    if let Some(c) = content {
        obj.insert("content".into(), c.clone());
    }
    Value::Object(obj)
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Builds the `Authorization` header value for a request.
///
/// `uri` must be the request target exactly as it will be sent, including the query string.
pub fn authorization(
    key: &SigningKey,
    origin: &str,
    destination: &str,
    method: &str,
    uri: &str,
    content: Option<&Value>,
) -> Result<String, Error> {
    let obj = request_object(method, uri, origin, destination, content);
    let sig = key.sign_bytes(&keys::signing_bytes(&obj)?);
    Ok(format!(
        "X-Matrix origin={},key={},sig={},destination={}",
        quote(origin),
        quote(key.key_id()),
        quote(&sig),
        quote(destination)
    ))
}

fn malformed(why: impl Into<String>) -> Error {
    Error::new(Code::MalformedAuth, why)
}

/// Whether `name` is a valid server name: a DNS name, IPv4 address or bracketed IPv6
/// address, with an optional port.
pub fn is_valid_server_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match name.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (name, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if p.parse::<u32>().map_or(true, |n| n > 65535) {
            return false;
        }
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Parses an `Authorization` header value.
///
/// The scheme and parameter names are matched without regard to case, whitespace around
/// commas is allowed, values may be quoted (with backslash escapes) or bare tokens, and
/// unknown parameters are ignored. The signature parameter is `sig`. Failures are
/// `400 M_UNAUTHORIZED`.
pub fn parse(header: &str) -> Result<XMatrix, Error> {
    let header = header.trim_start();
    let (scheme, rest) = header
        .split_once([' ', '\t'])
        .ok_or_else(|| malformed("Authorization: not an X-Matrix header"))?;
    if !scheme.eq_ignore_ascii_case("X-Matrix") {
        return Err(malformed("Authorization: the scheme is not X-Matrix"));
    }
    let mut origin = None;
    let mut destination = None;
    let mut key = None;
    let mut sig = None;
    let bytes = rest.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let name_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        let name = &rest[name_start..i];
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(malformed(format!(
                "Authorization: parameter {name:?} has no value"
            )));
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if i + 1 < bytes.len() => {
                        let c = rest[i + 1..].chars().next().unwrap_or('\\');
                        value.push(c);
                        i += 1 + c.len_utf8();
                    }
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => {
                        let c = rest[i..].chars().next().unwrap_or('?');
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(malformed(format!(
                    "Authorization: unterminated quoted value for {name:?}"
                )));
            }
        } else {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b',' | b' ' | b'\t') {
                i += 1;
            }
            value.push_str(&rest[start..i]);
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "origin" => &mut origin,
            "destination" => &mut destination,
            "key" => &mut key,
            "sig" => &mut sig,
            _ => continue,
        };
        *slot = Some(value);
    }
    let origin = origin.ok_or_else(|| malformed("Authorization: origin is missing"))?;
    if !is_valid_server_name(&origin) {
        return Err(malformed(format!(
            "Authorization: origin {origin:?} is not a valid server name"
        )));
    }
    let key = key.ok_or_else(|| malformed("Authorization: key is missing"))?;
    let sig = sig.ok_or_else(|| malformed("Authorization: sig is missing"))?;
    Ok(XMatrix {
        origin,
        destination,
        key,
        sig,
    })
}

/// Verifies a request's `Authorization` header and returns the authenticated origin.
///
/// `our_name` is this server's name: a header whose `destination` names another server is
/// `401 M_UNAUTHORIZED`; a header without `destination` is accepted. `keys_for` returns the
/// known verify keys of the origin server.
pub fn verify(
    header: &str,
    method: &str,
    uri: &str,
    content: Option<&Value>,
    our_name: &str,
    keys_for: &mut KeyLookup<'_>,
) -> Result<String, Error> {
    let parsed = parse(header)?;
    if let Some(dest) = &parsed.destination {
        if dest != our_name {
            return Err(Error::new(
                Code::Unauthorized,
                format!("Authorization: destination {dest:?} is not this server"),
            ));
        }
    }
    let keys = keys_for(&parsed.origin)?;
    let key = keys
        .iter()
        .find(|(id, _)| *id == parsed.key)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            Error::new(
                Code::Unauthorized,
                format!(
                    "Authorization: key {} of {} is not known",
                    parsed.key, parsed.origin
                ),
            )
        })?;
    let obj = request_object(method, uri, &parsed.origin, our_name, content);
    key.verify(&keys::signing_bytes(&obj)?, &parsed.sig)
        .map_err(|why| {
            Error::new(
                Code::Unauthorized,
                format!(
                    "Authorization: signature of {} with key {} is invalid: {why}",
                    parsed.origin, parsed.key
                ),
            )
        })?;
    Ok(parsed.origin)
}
