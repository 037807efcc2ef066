//! JSON values, a strict parser for raw event text, and canonical JSON output.
//!
//! Canonical JSON is what every hash and signature in Matrix is computed over, so this module
//! parses and prints JSON itself instead of going through a general-purpose JSON crate. A
//! general parser cannot report duplicate keys (it keeps the last one, which lets a sender sign
//! one value and have a receiver act on another), does not keep the text of numbers that older
//! room versions tolerate, and does not tell a lone surrogate from other malformed escapes.
//!
//! # Parsing decisions
//!
//! | input | strict (room versions 6+) | lenient (room versions 1-5) |
//! |---|---|---|
//! | duplicate key | `duplicate_key` error | `duplicate_key` error |
//! | fraction or exponent (`1.5`, `1e10`) | `float_not_allowed` error | kept; an integral value prints as an integer (`1e10` -> `10000000000`), others in Python's shortest form (`1.5`) |
//! | integer outside ±(2^53-1) | `integer_out_of_range` error | kept digit for digit |
//! | `-0` | read as `0` | read as `0` |
//! | lone surrogate escape | `lone_surrogate` error | `lone_surrogate` error |
//! | invalid UTF-8 | `invalid_utf8` error | `invalid_utf8` error |
//! | `NaN`, `Infinity`, leading zeros, trailing commas, raw control characters | `invalid_json` error | `invalid_json` error |
//! | nesting deeper than [`MAX_DEPTH`] | `invalid_json` error | `invalid_json` error |
//!
//! # Output
//!
//! Keys are sorted by Unicode code point (byte order of their UTF-8), there is no whitespace,
//! strings are raw UTF-8 (U+2028 and U+2029 included) except `"`, `\` and the control
//! characters below U+0020, which use the short escapes `\b \t \n \f \r` or lower-case `\u00xx`.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Error;

/// Largest integer magnitude allowed in canonical JSON: 2^53 - 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Deepest nesting of arrays and objects the parser accepts.
pub const MAX_DEPTH: usize = 256;

/// A JSON object: keys kept sorted by code point, which is canonical order.
pub type Object = BTreeMap<String, Value>;

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// A number tolerated only by the lenient mode (a float, or an integer beyond `i64`),
    /// stored as the exact text canonical JSON prints for it.
    Number(Box<str>),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Object),
}

/// How strictly numbers are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Room versions 6 and later: integers within ±(2^53-1) only.
    Strict,
    /// Room versions 1 to 5: floats and big integers are tolerated.
    Lenient,
}

/// The class of a JSON parse failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// A fraction or exponent in strict mode.
    FloatNotAllowed,
    /// An integer outside ±(2^53-1) in strict mode.
    IntegerOutOfRange,
    /// A `\uD800`-`\uDFFF` escape without its partner.
    LoneSurrogate,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text is not JSON.
    InvalidJson,
    /// An object names the same key twice.
    DuplicateKey,
    /// A number that no form can print (an overflowing float).
    InvalidValue,
}

impl JsonErrorKind {
    /// The short name used in test vectors and messages (`float_not_allowed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JsonErrorKind::FloatNotAllowed => "float_not_allowed",
            JsonErrorKind::IntegerOutOfRange => "integer_out_of_range",
            JsonErrorKind::LoneSurrogate => "lone_surrogate",
            JsonErrorKind::InvalidUtf8 => "invalid_utf8",
            JsonErrorKind::InvalidJson => "invalid_json",
            JsonErrorKind::DuplicateKey => "duplicate_key",
            JsonErrorKind::InvalidValue => "invalid_value",
        }
    }
}

/// A parse failure: its class, where in the document, and at which byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// The class of failure.
    pub kind: JsonErrorKind,
    /// The path of the offending value, such as `content.membership` or `auth_events[2]`;
    /// empty for the top level.
    pub path: String,
    /// Byte offset in the input.
    pub offset: usize,
    /// What exactly is wrong.
    pub detail: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A path through deep nesting is shortened to its start and end.
        let shortened;
        let field = if self.path.is_empty() {
            "(top level)"
        } else if self.path.len() > 120 {
            let head: String = self.path.chars().take(40).collect();
            let tail: String = {
                let rev: Vec<char> = self.path.chars().rev().take(40).collect();
                rev.into_iter().rev().collect()
            };
            shortened = format!("{head}...{tail}");
            shortened.as_str()
        } else {
            self.path.as_str()
        };
        write!(
            f,
            "{} at field {} (byte {}): {}",
            self.kind.as_str(),
            field,
            self.offset,
            self.detail
        )
    }
}

impl From<JsonError> for Error {
    fn from(e: JsonError) -> Error {
        Error::bad_json(e.to_string())
    }
}

impl Value {
    /// Parses raw bytes, judging numbers by `mode`.
    pub fn parse(bytes: &[u8], mode: Mode) -> Result<Value, JsonError> {
        // SIMD validation where the CPU has it; the slower standard check only runs to
        // locate the first bad byte of invalid input.
        let text = match simdutf8::basic::from_utf8(bytes).map_err(|_| std::str::from_utf8(bytes)) {
            Ok(t) => t,
            Err(Ok(t)) => t,
            Err(Err(e)) => {
                return Err(JsonError {
                    kind: JsonErrorKind::InvalidUtf8,
                    path: String::new(),
                    offset: e.valid_up_to(),
                    detail: "the bytes are not valid UTF-8".into(),
                })
            }
        };
        let mut p = Parser {
            text,
            src: text.as_bytes(),
            pos: 0,
            mode,
        };
        p.skip_ws();
        let v = p.value(0)?;
        p.skip_ws();
        if p.pos != p.src.len() {
            return Err(p.err(
                JsonErrorKind::InvalidJson,
                "trailing characters after the value",
            ));
        }
        Ok(v)
    }

    /// Parses text in strict mode.
    pub fn parse_strict(text: &str) -> Result<Value, JsonError> {
        Value::parse(text.as_bytes(), Mode::Strict)
    }

    /// The canonical JSON encoding of this value.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_canonical(&mut out);
        out
    }

    /// The canonical JSON encoding as a `String`.
    pub fn to_canonical_string(&self) -> String {
        // The writer only ever emits UTF-8.
        String::from_utf8(self.to_canonical()).unwrap_or_default()
    }

    /// Appends the canonical JSON encoding of this value to `out`.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => {
                let mut buf = itoa_buf(*i);
                out.append(&mut buf);
            }
            Value::Number(text) => out.extend_from_slice(text.as_bytes()),
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_canonical(out);
                }
                out.push(b']');
            }
            Value::Object(map) => write_object(map.iter(), out),
        }
    }

    /// This value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// This value as an integer, if it is an `Int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// This value as an object, if it is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// This value as a mutable object, if it is one.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// This value as an array, if it is one.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The member `key` of an object, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// A short name for this value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Whether this value, or anything inside it, is a number that strict mode refuses.
    /// Returns the path of the first such number.
    pub fn find_non_strict_number(&self) -> Option<String> {
        match self {
            Value::Number(_) => Some(String::new()),
            Value::Int(i) if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(i) => {
                Some(String::new())
            }
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                v.find_non_strict_number()
                    .map(|p| join_path(&format!("[{i}]"), &p))
            }),
            Value::Object(map) => map
                .iter()
                .find_map(|(k, v)| v.find_non_strict_number().map(|p| join_path(k, &p))),
            _ => None,
        }
    }
}

fn join_path(head: &str, tail: &str) -> String {
    if tail.is_empty() {
        head.to_string()
    } else if tail.starts_with('[') {
        format!("{head}{tail}")
    } else {
        format!("{head}.{tail}")
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Object> for Value {
    fn from(m: Object) -> Value {
        Value::Object(m)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

/// Writes an object whose entries come in canonical (sorted) order.
pub(crate) fn write_object<'a>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        v.write_canonical(out);
    }
    out.push(b'}');
}

fn itoa_buf(i: i64) -> Vec<u8> {
    i.to_string().into_bytes()
}

/// Appends a string in canonical form (quoted and escaped).
pub(crate) fn write_string_to(s: &str, out: &mut Vec<u8>) {
    write_string(s, out)
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !STRING_STOP[b as usize] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

struct Parser<'a> {
    /// The input, already known to be UTF-8.
    text: &'a str,
    src: &'a [u8],
    pos: usize,
    mode: Mode,
}

/// Bytes that end a plain run inside a string: `"`, `\` and the control characters.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Adds one path segment in front of an error's path while the error unwinds.
fn under(mut e: JsonError, seg: PathSeg<'_>) -> JsonError {
    let head = match seg {
        PathSeg::Key(k) => k.to_string(),
        PathSeg::Index(i) => format!("[{i}]"),
    };
    e.path = join_path(&head, &e.path);
    e
}

enum PathSeg<'k> {
    Key(&'k str),
    Index(usize),
}

impl<'a> Parser<'a> {
    fn err(&self, kind: JsonErrorKind, detail: &str) -> JsonError {
        JsonError {
            kind,
            path: String::new(),
            offset: self.pos,
            detail: detail.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.src.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(self.err(JsonErrorKind::InvalidJson, "unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(JsonErrorKind::InvalidJson, "expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err(JsonErrorKind::InvalidJson, "expected a JSON value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(
                JsonErrorKind::InvalidJson,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.pos += 1;
        let mut map = Object::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err(JsonErrorKind::InvalidJson, "expected a string key"));
            }
            let key_start = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(under(
                    self.err(JsonErrorKind::InvalidJson, "expected ':' after the key"),
                    PathSeg::Key(&key),
                ));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self
                .value(depth)
                .map_err(|e| under(e, PathSeg::Key(&key)))?;
            if map.contains_key(&key) {
                let mut e = self.err(JsonErrorKind::DuplicateKey, "the key appears twice");
                e.offset = key_start;
                return Err(under(e, PathSeg::Key(&key)));
            }
            map.insert(key, v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => {
                    return Err(self.err(JsonErrorKind::InvalidJson, "expected ',' or '}'"));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(
                JsonErrorKind::InvalidJson,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let idx = items.len();
            let v = self
                .value(depth)
                .map_err(|e| under(e, PathSeg::Index(idx)))?;
            items.push(v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err(JsonErrorKind::InvalidJson, "expected ',' or ']'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err(JsonErrorKind::InvalidJson, "truncated \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.err(JsonErrorKind::InvalidJson, "bad hex in \\u escape")),
            };
            v = v * 16 + n as u32;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Advances over plain string bytes to the next `"`, `\\` or control character.
    fn skip_plain(&mut self) {
        let rest = &self.src[self.pos..];
        let n = rest
            .iter()
            .position(|&b| STRING_STOP[b as usize])
            .unwrap_or(rest.len());
        self.pos += n;
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut run = self.pos;
        self.skip_plain();
        // Fast path: no escapes. Runs start and end at ASCII bytes, so they are whole
        // characters of the already validated text.
        if self.peek() == Some(b'"') {
            let s = self.text[run..self.pos].to_string();
            self.pos += 1;
            return Ok(s);
        }
        let mut out = String::with_capacity(self.pos - run + 16);
        loop {
            out.push_str(&self.text[run..self.pos]);
            let Some(b) = self.peek() else {
                return Err(self.err(JsonErrorKind::InvalidJson, "unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err(JsonErrorKind::InvalidJson, "unterminated string"));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err(JsonErrorKind::InvalidJson, "unknown escape"));
                        }
                    };
                    out.push(c);
                }
                _ => {
                    return Err(self.err(
                        JsonErrorKind::InvalidJson,
                        "raw control character in a string",
                    ))
                }
            }
            run = self.pos;
            self.skip_plain();
        }
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        if (0xDC00..=0xDFFF).contains(&hi) {
            return Err(self.err(
                JsonErrorKind::LoneSurrogate,
                "low surrogate escape without a high surrogate before it",
            ));
        }
        if (0xD800..=0xDBFF).contains(&hi) {
            if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(self.err(
                    JsonErrorKind::LoneSurrogate,
                    "high surrogate escape without a low surrogate after it",
                ));
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return Err(self.err(
                    JsonErrorKind::LoneSurrogate,
                    "high surrogate escape without a low surrogate after it",
                ));
            }
            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return char::from_u32(cp)
                .ok_or_else(|| self.err(JsonErrorKind::InvalidJson, "bad surrogate pair"));
        }
        char::from_u32(hi).ok_or_else(|| self.err(JsonErrorKind::InvalidJson, "bad \\u escape"))
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.err(JsonErrorKind::InvalidJson, "leading zero in a number"));
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.err(JsonErrorKind::InvalidJson, "expected digits")),
        }
        let int_end = self.pos;
        let mut frac: &[u8] = &[];
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let fs = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == fs {
                return Err(self.err(JsonErrorKind::InvalidJson, "expected digits after '.'"));
            }
            frac = &self.src[fs..self.pos];
            is_float = true;
        }
        let mut exp: i64 = 0;
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            let mut eneg = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                eneg = self.peek() == Some(b'-');
                self.pos += 1;
            }
            let es = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                // Saturate: anything this large is rejected below anyway.
                let d = (self.src[self.pos] - b'0') as i64;
                exp = exp.saturating_mul(10).saturating_add(d);
                self.pos += 1;
            }
            if self.pos == es {
                return Err(self.err(JsonErrorKind::InvalidJson, "expected exponent digits"));
            }
            if eneg {
                exp = -exp;
            }
            is_float = true;
        }
        let int_digits = &self.src[int_start..int_end];
        let text = &self.src[start..self.pos];
        if is_float {
            if self.mode == Mode::Strict {
                let mut e = self.err(
                    JsonErrorKind::FloatNotAllowed,
                    "numbers must be integers in this room version",
                );
                e.offset = start;
                return Err(e);
            }
            return self.lenient_float(neg, int_digits, frac, exp, text, start);
        }
        // An integer literal.
        let parsed = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<i64>().ok());
        match (parsed, self.mode) {
            (Some(i), Mode::Strict) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => {
                Ok(Value::Int(i))
            }
            (_, Mode::Strict) => {
                let mut e = self.err(
                    JsonErrorKind::IntegerOutOfRange,
                    "integers must lie within ±(2^53-1)",
                );
                e.offset = start;
                Err(e)
            }
            (Some(i), Mode::Lenient) => Ok(Value::Int(i)),
            (None, Mode::Lenient) => {
                let digits = String::from_utf8_lossy(int_digits);
                Ok(Value::Number(
                    if neg {
                        format!("-{digits}")
                    } else {
                        digits.into_owned()
                    }
                    .into_boxed_str(),
                ))
            }
        }
    }

    /// The canonical form of a float tolerated in lenient mode: a value whose decimal text is
    /// integral prints as that integer; otherwise the nearest double decides: an integral
    /// double prints as its exact integer digits, any other as Python's `repr` would (what
    /// Synapse signs for these older room versions). Printing it again gives the same text.
    fn lenient_float(
        &self,
        neg: bool,
        int_digits: &[u8],
        frac: &[u8],
        exp: i64,
        text: &[u8],
        start: usize,
    ) -> Result<Value, JsonError> {
        let invalid = |detail: &str| JsonError {
            kind: JsonErrorKind::InvalidValue,
            path: String::new(),
            offset: start,
            detail: detail.to_string(),
        };
        // All significant digits, and the power of ten of the last one.
        let mut digits: Vec<u8> = int_digits.iter().chain(frac.iter()).copied().collect();
        let mut scale = exp.saturating_sub(frac.len() as i64);
        // Leading zeros go in one step (removing them one by one is quadratic).
        let first_nonzero = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len().saturating_sub(1));
        digits.drain(..first_nonzero);
        while digits.len() > 1 && digits.last() == Some(&b'0') && scale < i64::MAX {
            digits.pop();
            scale += 1;
        }
        if digits == b"0" {
            return Ok(Value::Int(0));
        }
        let value: f64 = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| invalid("not a number"))?;
        if !value.is_finite() {
            return Err(invalid("the number is too large to represent"));
        }
        if scale >= 0 && (digits.len() as i64).saturating_add(scale) <= 400 {
            let mut s = String::with_capacity(digits.len() + scale as usize + 1);
            if neg {
                s.push('-');
            }
            s.push_str(std::str::from_utf8(&digits).unwrap_or("0"));
            s.extend(std::iter::repeat_n('0', scale as usize));
            if let Ok(i) = s.parse::<i64>() {
                return Ok(Value::Int(i));
            }
            return Ok(Value::Number(s.into_boxed_str()));
        }
        if value == 0.0 {
            return Ok(Value::Int(0));
        }
        if value.fract() == 0.0 {
            // Integral once rounded to a double: print that double's exact digits, which read
            // back as the same integer, so canonical output is a fixed point.
            let digits = format!("{value:.0}");
            return Ok(match digits.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::Number(digits.into_boxed_str()),
            });
        }
        Ok(Value::Number(python_float_repr(value).into_boxed_str()))
    }
}

/// Formats a finite `f64` the way Python's `repr(float)` does: the shortest digits that read
/// back to the same value, in positional form for exponents -4..16 and scientific otherwise.
pub fn python_float_repr(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{:e}", v); // e.g. "-1.2345e-7", shortest round-trip digits
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if (point as usize) >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// Builds an object from key/value pairs.
pub fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_matches_known_forms() {
        // Values as CPython prints them.
        assert_eq!(python_float_repr(1.5), "1.5");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e16), "1.5e+16");
        assert_eq!(python_float_repr(1e-5), "1e-05");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(123.456), "123.456");
        assert_eq!(python_float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(python_float_repr(1e15), "1000000000000000.0");
    }

    #[test]
    fn error_names_the_field() {
        let e = Value::parse(br#"{"content":{"n":[1,2.5]}}"#, Mode::Strict).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::FloatNotAllowed);
        assert_eq!(e.path, "content.n[1]");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = Value::parse(text.as_bytes(), Mode::Strict).unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::InvalidJson);
    }
}
