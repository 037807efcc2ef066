//! The C ABI.
//!
//! This module only converts between C and the Rust core; it holds no logic of its own. The
//! header `include/matrix_leave.h` is generated from it by cbindgen (see `build.rs`), so the
//! doc comments on the exports are written for a C reader.
//!
//! # Conventions
//!
//! - Every symbol starts with `mxl_`: opaque types are `mxl_<noun>`, functions
//!   `mxl_<noun>_<verb>` or `mxl_<verb>`, constants `MXL_*`.
//! - Fallible functions return an `mxl_result` (the [`Code`] enum) and take a trailing
//!   `mxl_error **out_error`, which may be NULL. On entry `*out_error` is set to NULL; on
//!   failure it receives a new `mxl_error` that the caller frees with `mxl_error_free`.
//! - Results the library allocates come back through `out_*` parameters as opaque handles
//!   (`mxl_bytes`, `mxl_signing_key`, ...) with their own `_free` function. Output pointers
//!   are set to NULL on entry, so they are NULL after a failure. `_free(NULL)` does nothing.
//! - JSON inputs are byte slices, `(const uint8_t *ptr, size_t len)`: `(NULL, 0)` is an empty
//!   slice and `(NULL, n > 0)` is `MXL_RESULT_NULL_ARGUMENT`. Names are NUL-terminated UTF-8.
//!   Borrowed inputs are only read during the call.
//! - A panic never crosses the boundary: every export runs its body inside [`guard`] or
//!   [`guard_or`], and a panic becomes `MXL_RESULT_INTERNAL`. `tests/ffi_guard.rs` checks that
//!   every `extern "C" fn` in this directory does so.
//! - There is no global mutable state. Handles are immutable after creation and may be
//!   shared between threads; freeing one while another thread uses it is the caller's bug.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::error::{Code, Error};
use crate::json::{Mode, Value};
use crate::version::RoomVersion;

mod abi;
pub mod crypto;
pub mod leaving;
pub mod plugin;
pub mod resident;

pub use abi::MXL_ABI_VERSION;

// ---------------------------------------------------------------------------------------------
// Panic guards
// ---------------------------------------------------------------------------------------------

/// Turns a panic payload into an internal error.
fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let what = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    };
    Error::new(
        Code::Internal,
        format!("internal error (a bug in matrix-leave): {what}"),
    )
}

/// Runs the body of a fallible export.
///
/// Panics become [`Code::Internal`]. When `out_error` is not NULL it is cleared first and, on
/// failure, receives a new `mxl_error`. Returns the result code.
///
/// `out_error` must be the pointer the C caller passed, which the export's contract makes
/// either NULL or valid for writing one pointer.
pub(crate) fn guard<F>(out_error: *mut *mut mxl_error, body: F) -> Code
where
    F: FnOnce() -> Result<(), Error>,
{
    if !out_error.is_null() {
        // SAFETY: non-NULL, and valid for writes by the export's contract.
        unsafe { out_error.write(ptr::null_mut()) };
    }

    let result = catch_quietly(body).unwrap_or_else(|p| Err(panic_error(p)));

    match result {
        Ok(()) => Code::Ok,
        Err(error) => {
            let code = error.code;
            if !out_error.is_null() {
                // SAFETY: as above.
                unsafe { out_error.write(mxl_error::into_raw(error)) };
            }
            code
        }
    }
}

/// Runs the body of an export that cannot fail (an accessor or a destructor), returning
/// `fallback` if it panics.
pub(crate) fn guard_or<T, F>(fallback: T, body: F) -> T
where
    F: FnOnce() -> T,
{
    catch_quietly(body).unwrap_or(fallback)
}

thread_local! {
    /// Set while this thread runs the body of an export.
    static IN_EXPORT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Catches a panic without letting the panic hook print it: the library never writes to
/// stderr. The hook is wrapped once, process-wide, and stays silent only for panics raised
/// inside an export; every other panic still reaches the hook that was installed before.
fn catch_quietly<T>(body: impl FnOnce() -> T) -> std::thread::Result<T> {
    type Hook = Box<dyn Fn(&panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
    // The hook that was installed before, kept in a static so that the wrapper captures
    // nothing and allocates nothing (unloading the library then leaks nothing).
    static PREVIOUS: std::sync::OnceLock<Hook> = std::sync::OnceLock::new();
    static WRAP_HOOK: std::sync::Once = std::sync::Once::new();
    WRAP_HOOK.call_once(|| {
        let _ = PREVIOUS.set(panic::take_hook());
        panic::set_hook(Box::new(|info| {
            if !IN_EXPORT.with(|f| f.get()) {
                if let Some(previous) = PREVIOUS.get() {
                    previous(info);
                }
            }
        }));
    });
    let outer = IN_EXPORT.with(|f| f.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(body));
    IN_EXPORT.with(|f| f.set(outer));
    result
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

fn null_argument(name: &str) -> Error {
    Error::new(Code::NullArgument, format!("{name} must not be NULL"))
}

/// Borrows a `(ptr, len)` byte slice. `(NULL, 0)` is the empty slice; `(NULL, n > 0)` is
/// [`Code::NullArgument`].
///
/// # Safety
///
/// A non-NULL `ptr` must point to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn slice_arg<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(null_argument(name))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!(
            "{name}_len is larger than any object can be"
        )));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows an optional byte slice: NULL or a length of 0 means absent.
///
/// # Safety
///
/// As for [`slice_arg`].
pub(crate) unsafe fn optional_slice_arg<'a>(
    ptr: *const u8,
    len: usize,
    name: &str,
) -> Result<Option<&'a [u8]>, Error> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { slice_arg(ptr, len, name) }.map(Some)
}

/// Borrows a NUL-terminated UTF-8 string. NULL is [`Code::NullArgument`]; bad UTF-8 is
/// [`Code::InvalidParam`] naming the argument.
///
/// # Safety
///
/// A non-NULL `ptr` must point to a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded from the caller.
    unsafe { optional_str_arg(ptr, name) }?.ok_or_else(|| null_argument(name))
}

/// Borrows a NUL-terminated UTF-8 string that may be NULL.
///
/// # Safety
///
/// As for [`str_arg`].
pub(crate) unsafe fn optional_str_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map(Some).map_err(|e| {
        Error::invalid(format!(
            "{name} is not valid UTF-8 (byte {})",
            e.valid_up_to()
        ))
    })
}

/// Borrows a handle the caller owns. NULL is [`Code::NullArgument`].
///
/// # Safety
///
/// A non-NULL `ptr` must point to a live `T` that is not freed during `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller promises a live object when non-NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| null_argument(name))
}

/// Checks an output pointer and sets it to NULL, so it stays NULL if the call fails.
/// NULL is [`Code::NullArgument`]. Exports check their outputs before their inputs, so that
/// an output is NULL after any failure, including a bad input.
///
/// # Safety
///
/// A non-NULL `ptr` must be valid for writing one pointer during `'a`.
pub(crate) unsafe fn out_arg<'a, T>(ptr: *mut *mut T, name: &str) -> Result<&'a mut *mut T, Error> {
    // SAFETY: the caller promises a writable slot when non-NULL.
    let slot = unsafe { ptr.as_mut() }.ok_or_else(|| null_argument(name))?;
    *slot = ptr::null_mut();
    Ok(slot)
}

/// Looks up a required room version argument.
///
/// # Safety
///
/// As for [`str_arg`].
pub(crate) unsafe fn room_version_arg(
    ptr: *const c_char,
    name: &str,
) -> Result<&'static RoomVersion, Error> {
    // SAFETY: forwarded from the caller.
    let id = unsafe { str_arg(ptr, name) }?;
    RoomVersion::require(id)
}

/// Looks up a room version argument that may be NULL.
///
/// # Safety
///
/// As for [`str_arg`].
pub(crate) unsafe fn optional_room_version_arg(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'static RoomVersion>, Error> {
    // SAFETY: forwarded from the caller.
    match unsafe { optional_str_arg(ptr, name) }? {
        Some(id) => RoomVersion::require(id).map(Some),
        None => Ok(None),
    }
}

/// The JSON mode for an optional room version: lenient for versions 1 to 5, strict for the
/// others and when no version is given.
pub(crate) fn json_mode(version: Option<&RoomVersion>) -> Mode {
    version.map_or(Mode::Strict, RoomVersion::json_mode)
}

/// Parses a JSON argument, naming the argument in the error.
pub(crate) fn parse_json(bytes: &[u8], mode: Mode, name: &str) -> Result<Value, Error> {
    Value::parse(bytes, mode).map_err(|e| Error::bad_json(format!("{name}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------------

/// A C string from text that may hold NUL characters, which become U+FFFD.
pub(crate) fn c_string_lossy(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// The errcode of a result as a static C string.
fn errcode_c_str(code: Code) -> &'static CStr {
    // Listed by errcode rather than by code so that a new code reusing an errcode needs no
    // change here; `errcodes_match_the_rust_strings` checks the table is complete.
    match code.errcode() {
        "" => c"",
        "M_BAD_JSON" => c"M_BAD_JSON",
        "M_INVALID_PARAM" => c"M_INVALID_PARAM",
        "M_FORBIDDEN" => c"M_FORBIDDEN",
        "M_NOT_FOUND" => c"M_NOT_FOUND",
        "M_TOO_LARGE" => c"M_TOO_LARGE",
        "M_UNSUPPORTED_ROOM_VERSION" => c"M_UNSUPPORTED_ROOM_VERSION",
        "M_UNAUTHORIZED" => c"M_UNAUTHORIZED",
        "M_UNRECOGNIZED" => c"M_UNRECOGNIZED",
        "M_MISSING_PARAM" => c"M_MISSING_PARAM",
        _ => c"M_UNKNOWN",
    }
}

// ---------------------------------------------------------------------------------------------
// Library version
// ---------------------------------------------------------------------------------------------

/// The library version, such as "0.1.0" (the same text as MXL_VERSION in the header the
/// library was built with).
///
/// Returns a static NUL-terminated string that is valid forever; do not free it.
#[no_mangle]
pub extern "C" fn mxl_version() -> *const c_char {
    guard_or(ptr::null(), || {
        const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
        VERSION.as_ptr().cast()
    })
}

/// The C ABI version of the loaded library. A host built against this header should check
/// that it equals MXL_ABI_VERSION before making other calls.
#[no_mangle]
pub extern "C" fn mxl_abi_version() -> u32 {
    guard_or(MXL_ABI_VERSION, || MXL_ABI_VERSION)
}

/// The ed25519 code signature checks run on in this process: "avx512ifma", "avx2" or
/// "serial". The library carries more than one and picks by the CPU's features when it is
/// first used, so a host may log this once at start-up.
///
/// Returns a static NUL-terminated string that is valid forever; do not free it.
#[no_mangle]
pub extern "C" fn mxl_ed25519_backend() -> *const c_char {
    guard_or(ptr::null(), || match crate::keys::ed25519_backend() {
        "avx512ifma" => c"avx512ifma".as_ptr(),
        "avx2" => c"avx2".as_ptr(),
        _ => c"serial".as_ptr(),
    })
}

// ---------------------------------------------------------------------------------------------
// Result codes
// ---------------------------------------------------------------------------------------------

/// The HTTP status a federation endpoint answers with for a result code: 200 for
/// MXL_RESULT_OK, 400, 401, 403, 404, 413 or 500 for failures.
///
/// `code` is an mxl_result value; a value this library does not know gives 500.
#[no_mangle]
pub extern "C" fn mxl_result_http_status(code: u32) -> u16 {
    guard_or(500, || Code::from_u32(code).map_or(500, Code::http_status))
}

/// The Matrix errcode for a result code, such as "M_FORBIDDEN"; "" for MXL_RESULT_OK.
///
/// `code` is an mxl_result value; a value this library does not know gives "M_UNKNOWN".
/// Returns a static NUL-terminated string that is valid forever; do not free it.
#[no_mangle]
pub extern "C" fn mxl_result_errcode(code: u32) -> *const c_char {
    guard_or(ptr::null(), || {
        Code::from_u32(code)
            .map_or(c"M_UNKNOWN", errcode_c_str)
            .as_ptr()
    })
}

// ---------------------------------------------------------------------------------------------
// mxl_error
// ---------------------------------------------------------------------------------------------

/// A failure: its result code and a message naming the argument, field or rule at fault.
///
/// Created by a failing call that was given a non-NULL `out_error`; owned by the caller, who
/// frees it with `mxl_error_free`.
#[expect(non_camel_case_types, reason = "the C name of the type")]
pub struct mxl_error {
    code: Code,
    message: CString,
}

impl mxl_error {
    /// Moves an error to the heap for C.
    pub(crate) fn into_raw(error: Error) -> *mut mxl_error {
        Box::into_raw(Box::new(mxl_error {
            code: error.code,
            message: c_string_lossy(&error.message),
        }))
    }
}

/// The result code of an error. Returns MXL_RESULT_NULL_ARGUMENT when `error` is NULL.
///
/// # Safety
///
/// `error` must be NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_error_code(error: *const mxl_error) -> Code {
    guard_or(Code::Internal, || {
        // SAFETY: NULL or live, by the caller's contract.
        unsafe { error.as_ref() }.map_or(Code::NullArgument, |e| e.code)
    })
}

/// The HTTP status for an error (see mxl_result_http_status). Returns 500 when `error` is
/// NULL.
///
/// # Safety
///
/// `error` must be NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_error_http_status(error: *const mxl_error) -> u16 {
    guard_or(500, || {
        // SAFETY: NULL or live, by the caller's contract.
        unsafe { error.as_ref() }.map_or(500, |e| e.code.http_status())
    })
}

/// The Matrix errcode for an error, such as "M_BAD_JSON" (see mxl_result_errcode).
///
/// Returns a static NUL-terminated string that is valid forever, even after the error is
/// freed; "M_UNKNOWN" when `error` is NULL.
///
/// # Safety
///
/// `error` must be NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_error_errcode(error: *const mxl_error) -> *const c_char {
    guard_or(ptr::null(), || {
        // SAFETY: NULL or live, by the caller's contract.
        let code = unsafe { error.as_ref() }.map_or(Code::Internal, |e| e.code);
        errcode_c_str(code).as_ptr()
    })
}

/// The human-readable message of an error, naming the argument, field or rule at fault.
///
/// Returns a NUL-terminated UTF-8 string owned by the error: valid until mxl_error_free.
/// NUL characters inside the message are replaced by U+FFFD. Returns "" when `error` is
/// NULL.
///
/// # Safety
///
/// `error` must be NULL or a live error from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_error_message(error: *const mxl_error) -> *const c_char {
    guard_or(ptr::null(), || {
        // SAFETY: NULL or live, by the caller's contract; the string lives as long as it.
        unsafe { error.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
    })
}

/// Frees an error. NULL is allowed and does nothing.
///
/// # Safety
///
/// `error` must be NULL or an error from this library that has not been freed yet. It must
/// not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mxl_error_free(error: *mut mxl_error) {
    guard_or((), || {
        if !error.is_null() {
            // SAFETY: created by Box::into_raw in mxl_error::into_raw and not freed yet.
            drop(unsafe { Box::from_raw(error) });
        }
    })
}

// ---------------------------------------------------------------------------------------------
// mxl_bytes
// ---------------------------------------------------------------------------------------------

/// An owned byte string returned by the library: JSON, base64 text, an ID or a header value.
///
/// The data is followed by one NUL byte that mxl_bytes_len does not count, so a textual
/// result can also be read as a C string. Owned by the caller, who frees it with
/// `mxl_bytes_free`.
#[expect(non_camel_case_types, reason = "the C name of the type")]
pub struct mxl_bytes {
    /// The data plus the trailing NUL.
    data: Box<[u8]>,
}

impl mxl_bytes {
    /// Moves bytes to the heap for C.
    pub(crate) fn into_raw(data: impl Into<Vec<u8>>) -> *mut mxl_bytes {
        let mut data = data.into();
        data.push(0);
        Box::into_raw(Box::new(mxl_bytes {
            data: data.into_boxed_slice(),
        }))
    }

    /// The data without the trailing NUL.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data[..self.data.len() - 1]
    }
}

/// A pointer to the data of `bytes`, followed by a NUL byte not counted in the length.
///
/// Valid until mxl_bytes_free. Returns NULL when `bytes` is NULL.
///
/// # Safety
///
/// `bytes` must be NULL or a live mxl_bytes from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_bytes_data(bytes: *const mxl_bytes) -> *const u8 {
    guard_or(ptr::null(), || {
        // SAFETY: NULL or live, by the caller's contract.
        unsafe { bytes.as_ref() }.map_or(ptr::null(), |b| b.data.as_ptr())
    })
}

/// The length of `bytes` in bytes, without the trailing NUL. Returns 0 when `bytes` is NULL.
///
/// # Safety
///
/// `bytes` must be NULL or a live mxl_bytes from this library.
#[no_mangle]
pub unsafe extern "C" fn mxl_bytes_len(bytes: *const mxl_bytes) -> usize {
    guard_or(0, || {
        // SAFETY: NULL or live, by the caller's contract.
        unsafe { bytes.as_ref() }.map_or(0, |b| b.as_slice().len())
    })
}

/// Frees an mxl_bytes. NULL is allowed and does nothing.
///
/// # Safety
///
/// `bytes` must be NULL or an mxl_bytes from this library that has not been freed yet. It
/// must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mxl_bytes_free(bytes: *mut mxl_bytes) {
    guard_or((), || {
        if !bytes.is_null() {
            // SAFETY: created by Box::into_raw in mxl_bytes::into_raw and not freed yet.
            drop(unsafe { Box::from_raw(bytes) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let mut error: *mut mxl_error = ptr::null_mut();
        let code = guard(&mut error, || panic!("boom"));
        assert_eq!(code, Code::Internal);
        assert!(!error.is_null());
        // SAFETY: the guard just created it.
        unsafe {
            assert_eq!(mxl_error_code(error), Code::Internal);
            let message = CStr::from_ptr(mxl_error_message(error)).to_str().unwrap();
            assert_eq!(message, "internal error (a bug in matrix-leave): boom");
            mxl_error_free(error);
        }
        assert_eq!(guard_or(7, || -> i32 { panic!("boom") }), 7);
    }

    #[test]
    fn success_clears_out_error() {
        let mut error: *mut mxl_error = ptr::dangling_mut::<mxl_error>();
        assert_eq!(guard(&mut error, || Ok(())), Code::Ok);
        assert!(error.is_null());
        assert_eq!(
            guard(ptr::null_mut(), || Err(Error::forbidden("no"))),
            Code::Forbidden
        );
    }

    #[test]
    fn errcodes_match_the_rust_strings() {
        for code in Code::ALL {
            assert_eq!(
                errcode_c_str(code).to_str().unwrap(),
                code.errcode(),
                "{code:?}"
            );
            let c = unsafe { CStr::from_ptr(mxl_result_errcode(code as u32)) };
            assert_eq!(c.to_str().unwrap(), code.errcode());
            assert_eq!(mxl_result_http_status(code as u32), code.http_status());
        }
        let unknown = unsafe { CStr::from_ptr(mxl_result_errcode(9999)) };
        assert_eq!(unknown.to_str().unwrap(), "M_UNKNOWN");
        assert_eq!(mxl_result_http_status(9999), 500);
    }

    #[test]
    fn messages_lose_interior_nuls() {
        let error = mxl_error::into_raw(Error::invalid("a\0b"));
        // SAFETY: just created.
        unsafe {
            let message = CStr::from_ptr(mxl_error_message(error)).to_str().unwrap();
            assert_eq!(message, "a\u{FFFD}b");
            assert_eq!(mxl_error_http_status(error), 400);
            mxl_error_free(error);
            mxl_error_free(ptr::null_mut());
            assert_eq!(mxl_error_code(ptr::null()), Code::NullArgument);
        }
    }

    #[test]
    fn slices_check_null_before_reading() {
        // SAFETY: NULL pointers are never read.
        unsafe {
            assert_eq!(slice_arg(ptr::null(), 0, "json").unwrap(), b"");
            let e = slice_arg(ptr::null(), 3, "json").unwrap_err();
            assert_eq!(e.code, Code::NullArgument);
            assert_eq!(e.message, "json must not be NULL");
            assert_eq!(optional_slice_arg(ptr::null(), 0, "content").unwrap(), None);
            let e = str_arg(ptr::null(), "server_name").unwrap_err();
            assert_eq!(e.code, Code::NullArgument);
            let bad = c"\xff".as_ptr();
            let e = str_arg(bad, "server_name").unwrap_err();
            assert_eq!(e.code, Code::InvalidParam);
            assert_eq!(e.message, "server_name is not valid UTF-8 (byte 0)");
            let e = room_version_arg(c"99".as_ptr(), "room_version").unwrap_err();
            assert_eq!(e.code, Code::UnsupportedRoomVersion);
        }
    }

    #[test]
    fn bytes_keep_a_trailing_nul() {
        let bytes = mxl_bytes::into_raw(b"abc".to_vec());
        // SAFETY: just created.
        unsafe {
            assert_eq!(mxl_bytes_len(bytes), 3);
            let c = CStr::from_ptr(mxl_bytes_data(bytes).cast());
            assert_eq!(c.to_bytes(), b"abc");
            mxl_bytes_free(bytes);
            mxl_bytes_free(ptr::null_mut());
            assert_eq!(mxl_bytes_len(ptr::null()), 0);
        }
    }
}
