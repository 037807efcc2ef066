//! Errors that carry an HTTP status and a Matrix errcode.
//!
//! Every failure in the library is an [`Error`]: a stable [`Code`] (part of the C ABI), the
//! HTTP status and Matrix errcode that code maps to, and a message that names the field or
//! rule at fault.

use std::fmt;

/// Stable result codes. The numeric values are part of the C ABI and are never reused or
/// renumbered; new codes are appended.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// The body is not valid JSON, or a value breaks the room version's JSON rules
    /// (400 `M_BAD_JSON`).
    BadJson = 1,
    /// A request parameter or event field has the wrong value (400 `M_INVALID_PARAM`).
    InvalidParam = 2,
    /// The request is refused (403 `M_FORBIDDEN`).
    Forbidden = 3,
    /// The room or event is unknown (404 `M_NOT_FOUND`).
    NotFound = 4,
    /// The body is over the size limit (413 `M_TOO_LARGE`).
    TooLarge = 5,
    /// The room version is not one the library knows (400 `M_UNSUPPORTED_ROOM_VERSION`).
    UnsupportedRoomVersion = 6,
    /// Request authentication failed (401 `M_UNAUTHORIZED`).
    Unauthorized = 7,
    /// A host callback failed, or an internal error happened (500 `M_UNKNOWN`).
    HostFailure = 8,
    /// A required argument was NULL or otherwise unusable (400 `M_INVALID_PARAM`; this is a
    /// programming error in the host, not a remote server's fault).
    NullArgument = 9,
    /// A signature or hash did not verify (400 `M_INVALID_PARAM`; a bad request signature is
    /// reported as `Unauthorized` instead).
    BadSignature = 10,
    /// The endpoint is switched off or not recognised (404 `M_UNRECOGNIZED`).
    Unrecognized = 11,
    /// The caller's buffer is too small, or a value does not fit (500 `M_UNKNOWN`).
    Internal = 12,
    /// A required value is missing (400 `M_MISSING_PARAM`).
    MissingParam = 13,
    /// The `Authorization` header is missing or malformed (400 `M_UNAUTHORIZED`).
    MalformedAuth = 14,
}

impl Code {
    /// The HTTP status a federation endpoint answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Ok => 200,
            Code::BadJson
            | Code::InvalidParam
            | Code::UnsupportedRoomVersion
            | Code::NullArgument
            | Code::BadSignature
            | Code::MissingParam
            | Code::MalformedAuth => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::NotFound | Code::Unrecognized => 404,
            Code::TooLarge => 413,
            Code::HostFailure | Code::Internal => 500,
        }
    }

    /// The Matrix errcode for this code (`""` for [`Code::Ok`]).
    pub fn errcode(self) -> &'static str {
        match self {
            Code::Ok => "",
            Code::BadJson => "M_BAD_JSON",
            Code::InvalidParam | Code::NullArgument | Code::BadSignature => "M_INVALID_PARAM",
            Code::Forbidden => "M_FORBIDDEN",
            Code::NotFound => "M_NOT_FOUND",
            Code::TooLarge => "M_TOO_LARGE",
            Code::UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            Code::Unauthorized | Code::MalformedAuth => "M_UNAUTHORIZED",
            Code::HostFailure | Code::Internal => "M_UNKNOWN",
            Code::Unrecognized => "M_UNRECOGNIZED",
            Code::MissingParam => "M_MISSING_PARAM",
        }
    }

    /// Every code, in numeric order.
    pub const ALL: [Code; 15] = [
        Code::Ok,
        Code::BadJson,
        Code::InvalidParam,
        Code::Forbidden,
        Code::NotFound,
        Code::TooLarge,
        Code::UnsupportedRoomVersion,
        Code::Unauthorized,
        Code::HostFailure,
        Code::NullArgument,
        Code::BadSignature,
        Code::Unrecognized,
        Code::Internal,
        Code::MissingParam,
        Code::MalformedAuth,
    ];

    /// The code with this numeric value, if there is one.
    pub fn from_u32(value: u32) -> Option<Code> {
        Code::ALL.get(value as usize).copied()
    }
}

/// A failure with its code and a message naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The stable code.
    pub code: Code,
    /// A human-readable message naming the field or rule at fault.
    pub message: String,
}

impl Error {
    /// An error with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// `400 M_BAD_JSON`.
    pub fn bad_json(message: impl Into<String>) -> Error {
        Error::new(Code::BadJson, message)
    }

    /// `400 M_INVALID_PARAM`.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Code::InvalidParam, message)
    }

    /// `403 M_FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(Code::Forbidden, message)
    }

    /// `404 M_NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Code::NotFound, message)
    }

    /// `500 M_UNKNOWN` caused by a host callback.
    pub fn host(message: impl Into<String>) -> Error {
        Error::new(Code::HostFailure, message)
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The Matrix errcode for this error.
    pub fn errcode(&self) -> &'static str {
        self.code.errcode()
    }

    /// The standard Matrix error body, `{"errcode": ..., "error": ...}`, as canonical JSON.
    pub fn to_body(&self) -> Vec<u8> {
        let mut obj = crate::json::Object::new();
        obj.insert("errcode".into(), crate::json::Value::from(self.errcode()));
        obj.insert(
            "error".into(),
            crate::json::Value::from(self.message.as_str()),
        );
        crate::json::Value::Object(obj).to_canonical()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.http_status(),
            self.errcode(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
