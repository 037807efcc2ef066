//! The plugin entry point: one exported symbol, `mxl_plugin_get`, that hands a host which
//! loads the library with `dlopen` every other export as a table of function pointers.
//!
//! A host that links the library needs none of this. A host that loads it at run time looks
//! up one symbol instead of fifty, and learns in the same call whether the library speaks
//! the ABI the host was compiled for.

use std::ffi::c_char;
use std::ptr;

use super::crypto::{self, mxl_signing_key};
use super::leaving::{
    self, mxl_http_response, mxl_leave_params, mxl_template_params, mxl_transport,
};
use super::resident::{
    self, mxl_out, mxl_resident, mxl_resident_callbacks, mxl_resident_config, mxl_response,
    mxl_send_leave_params,
};
use super::{guard_or, mxl_bytes, mxl_error, MXL_ABI_VERSION};
use crate::error::Code;

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// Every export of the library as a function pointer, for hosts that load it with `dlopen`;
/// returned by `mxl_plugin_get`.
///
/// Each field points to the export of the same name with the `mxl_` prefix (`resident_new`
/// is `mxl_resident_new`) and behaves exactly like it; the export's documentation applies.
/// No field is NULL. The table is static: it lives as long as the library stays loaded and
/// must not be written to or freed.
///
/// Fields are only ever appended, so a host compiled against a newer header that wants a
/// field this library may not have checks `size` against the field's offset first.
#[repr(C)]
pub struct mxl_plugin_v1 {
    /// The size of this table in bytes, as sizeof(mxl_plugin_v1) was when the library was
    /// built.
    pub size: usize,

    // ---- Library version and result codes ----
    /// mxl_version.
    pub version: unsafe extern "C" fn() -> *const c_char,
    /// mxl_abi_version.
    pub abi_version: unsafe extern "C" fn() -> u32,
    /// mxl_result_http_status.
    pub result_http_status: unsafe extern "C" fn(code: u32) -> u16,
    /// mxl_result_errcode.
    pub result_errcode: unsafe extern "C" fn(code: u32) -> *const c_char,

    // ---- mxl_error ----
    /// mxl_error_code.
    pub error_code: unsafe extern "C" fn(error: *const mxl_error) -> Code,
    /// mxl_error_http_status.
    pub error_http_status: unsafe extern "C" fn(error: *const mxl_error) -> u16,
    /// mxl_error_errcode.
    pub error_errcode: unsafe extern "C" fn(error: *const mxl_error) -> *const c_char,
    /// mxl_error_message.
    pub error_message: unsafe extern "C" fn(error: *const mxl_error) -> *const c_char,
    /// mxl_error_free.
    pub error_free: unsafe extern "C" fn(error: *mut mxl_error),

    // ---- mxl_bytes ----
    /// mxl_bytes_data.
    pub bytes_data: unsafe extern "C" fn(bytes: *const mxl_bytes) -> *const u8,
    /// mxl_bytes_len.
    pub bytes_len: unsafe extern "C" fn(bytes: *const mxl_bytes) -> usize,
    /// mxl_bytes_free.
    pub bytes_free: unsafe extern "C" fn(bytes: *mut mxl_bytes),

    // ---- Canonical JSON, hashes, redaction and IDs ----
    /// mxl_canonical_json.
    pub canonical_json: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_content_hash.
    pub content_hash: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_reference_hash.
    pub reference_hash: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_event_id.
    pub event_id: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_room_id_from_create_event.
    pub room_id_from_create_event: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_redact.
    pub redact: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,

    // ---- mxl_signing_key ----
    /// mxl_signing_key_from_seed.
    pub signing_key_from_seed: unsafe extern "C" fn(
        seed: *const u8,
        seed_len: usize,
        key_id: *const c_char,
        out_key: *mut *mut mxl_signing_key,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_signing_key_generate.
    pub signing_key_generate: unsafe extern "C" fn(
        key_id: *const c_char,
        out_key: *mut *mut mxl_signing_key,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_signing_key_free.
    pub signing_key_free: unsafe extern "C" fn(key: *mut mxl_signing_key),
    /// mxl_signing_key_key_id.
    pub signing_key_key_id: unsafe extern "C" fn(key: *const mxl_signing_key) -> *const c_char,
    /// mxl_signing_key_public_key.
    pub signing_key_public_key: unsafe extern "C" fn(
        key: *const mxl_signing_key,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_signing_key_seed.
    pub signing_key_seed:
        unsafe extern "C" fn(key: *const mxl_signing_key, out_seed: *mut u8) -> Code,

    // ---- JSON and event signatures ----
    /// mxl_signing_key_sign_json.
    pub signing_key_sign_json: unsafe extern "C" fn(
        key: *const mxl_signing_key,
        json: *const u8,
        json_len: usize,
        server_name: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_verify_json.
    pub verify_json: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        server_name: *const c_char,
        keys_json: *const u8,
        keys_len: usize,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_sign_event.
    pub sign_event: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        server_name: *const c_char,
        key: *const mxl_signing_key,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_verify_event.
    pub verify_event: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        room_version: *const c_char,
        keys_json: *const u8,
        keys_len: usize,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,

    // ---- X-Matrix request authentication ----
    /// mxl_xmatrix_authorization.
    pub xmatrix_authorization: unsafe extern "C" fn(
        key: *const mxl_signing_key,
        origin: *const c_char,
        destination: *const c_char,
        method: *const c_char,
        uri: *const c_char,
        content_json: *const u8,
        content_len: usize,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_xmatrix_parse.
    pub xmatrix_parse: unsafe extern "C" fn(
        header: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_xmatrix_verify.
    pub xmatrix_verify: unsafe extern "C" fn(
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
    ) -> Code,

    // ---- Server key documents ----
    /// mxl_server_key_document.
    pub server_key_document: unsafe extern "C" fn(
        key: *const mxl_signing_key,
        server_name: *const c_char,
        valid_until_ts: i64,
        old_keys_json: *const u8,
        old_keys_len: usize,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_verify_server_key_document.
    pub verify_server_key_document: unsafe extern "C" fn(
        json: *const u8,
        json_len: usize,
        requested_server: *const c_char,
        out_bytes: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,

    // ---- The leaving side ----
    /// mxl_complete_leave_template.
    pub complete_leave_template: unsafe extern "C" fn(
        params: *const mxl_template_params,
        out_json: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_http_response_set.
    pub http_response_set: unsafe extern "C" fn(
        response: *mut mxl_http_response,
        status: u16,
        body: *const u8,
        body_len: usize,
    ),
    /// mxl_http_response_fail.
    pub http_response_fail: unsafe extern "C" fn(
        response: *mut mxl_http_response,
        message: *const c_char,
        message_len: usize,
    ),
    /// mxl_leave_room.
    pub leave_room: unsafe extern "C" fn(
        params: *const mxl_leave_params,
        transport: *const mxl_transport,
        out_json: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,

    // ---- The resident side ----
    /// mxl_out_set.
    pub out_set: unsafe extern "C" fn(out: *mut mxl_out, data: *const u8, len: usize),
    /// mxl_resident_new.
    pub resident_new: unsafe extern "C" fn(
        config: *const mxl_resident_config,
        callbacks: *const mxl_resident_callbacks,
        out_resident: *mut *mut mxl_resident,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_resident_free.
    pub resident_free: unsafe extern "C" fn(resident: *mut mxl_resident),
    /// mxl_resident_make_leave.
    pub resident_make_leave: unsafe extern "C" fn(
        resident: *const mxl_resident,
        room_id: *const c_char,
        user_id: *const c_char,
        origin: *const c_char,
        out_response: *mut *mut mxl_response,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_resident_send_leave.
    pub resident_send_leave: unsafe extern "C" fn(
        resident: *const mxl_resident,
        params: *const mxl_send_leave_params,
        out_response: *mut *mut mxl_response,
        out_error: *mut *mut mxl_error,
    ) -> Code,

    // ---- mxl_response ----
    /// mxl_response_status.
    pub response_status: unsafe extern "C" fn(response: *const mxl_response) -> u16,
    /// mxl_response_code.
    pub response_code: unsafe extern "C" fn(response: *const mxl_response) -> Code,
    /// mxl_response_errcode.
    pub response_errcode: unsafe extern "C" fn(response: *const mxl_response) -> *const c_char,
    /// mxl_response_message.
    pub response_message: unsafe extern "C" fn(response: *const mxl_response) -> *const c_char,
    /// mxl_response_body.
    pub response_body:
        unsafe extern "C" fn(response: *const mxl_response, out_len: *mut usize) -> *const u8,
    /// mxl_response_accepted.
    pub response_accepted: unsafe extern "C" fn(response: *const mxl_response) -> bool,
    /// mxl_response_event_id.
    pub response_event_id: unsafe extern "C" fn(response: *const mxl_response) -> *const c_char,
    /// mxl_response_json.
    pub response_json: unsafe extern "C" fn(
        response: *const mxl_response,
        out_json: *mut *mut mxl_bytes,
        out_error: *mut *mut mxl_error,
    ) -> Code,
    /// mxl_response_free.
    pub response_free: unsafe extern "C" fn(response: *mut mxl_response),

    // ---- Appended after the first release of this table ----
    /// mxl_ed25519_backend.
    pub ed25519_backend: unsafe extern "C" fn() -> *const c_char,
}

/// The one table the library hands out. Function pointers and integers only, so it is
/// immutable, shareable between threads, and never freed.
static PLUGIN_V1: mxl_plugin_v1 = mxl_plugin_v1 {
    size: std::mem::size_of::<mxl_plugin_v1>(),

    version: super::mxl_version,
    abi_version: super::mxl_abi_version,
    result_http_status: super::mxl_result_http_status,
    result_errcode: super::mxl_result_errcode,

    error_code: super::mxl_error_code,
    error_http_status: super::mxl_error_http_status,
    error_errcode: super::mxl_error_errcode,
    error_message: super::mxl_error_message,
    error_free: super::mxl_error_free,

    bytes_data: super::mxl_bytes_data,
    bytes_len: super::mxl_bytes_len,
    bytes_free: super::mxl_bytes_free,

    canonical_json: crypto::mxl_canonical_json,
    content_hash: crypto::mxl_content_hash,
    reference_hash: crypto::mxl_reference_hash,
    event_id: crypto::mxl_event_id,
    room_id_from_create_event: crypto::mxl_room_id_from_create_event,
    redact: crypto::mxl_redact,

    signing_key_from_seed: crypto::mxl_signing_key_from_seed,
    signing_key_generate: crypto::mxl_signing_key_generate,
    signing_key_free: crypto::mxl_signing_key_free,
    signing_key_key_id: crypto::mxl_signing_key_key_id,
    signing_key_public_key: crypto::mxl_signing_key_public_key,
    signing_key_seed: crypto::mxl_signing_key_seed,

    signing_key_sign_json: crypto::mxl_signing_key_sign_json,
    verify_json: crypto::mxl_verify_json,
    sign_event: crypto::mxl_sign_event,
    verify_event: crypto::mxl_verify_event,

    xmatrix_authorization: crypto::mxl_xmatrix_authorization,
    xmatrix_parse: crypto::mxl_xmatrix_parse,
    xmatrix_verify: crypto::mxl_xmatrix_verify,

    server_key_document: crypto::mxl_server_key_document,
    verify_server_key_document: crypto::mxl_verify_server_key_document,

    complete_leave_template: leaving::mxl_complete_leave_template,
    http_response_set: leaving::mxl_http_response_set,
    http_response_fail: leaving::mxl_http_response_fail,
    leave_room: leaving::mxl_leave_room,

    out_set: resident::mxl_out_set,
    resident_new: resident::mxl_resident_new,
    resident_free: resident::mxl_resident_free,
    resident_make_leave: resident::mxl_resident_make_leave,
    resident_send_leave: resident::mxl_resident_send_leave,

    response_status: resident::mxl_response_status,
    response_code: resident::mxl_response_code,
    response_errcode: resident::mxl_response_errcode,
    response_message: resident::mxl_response_message,
    response_body: resident::mxl_response_body,
    response_accepted: resident::mxl_response_accepted,
    response_event_id: resident::mxl_response_event_id,
    response_json: resident::mxl_response_json,
    response_free: resident::mxl_response_free,
    ed25519_backend: super::mxl_ed25519_backend,
};

// ---------------------------------------------------------------------------------------------
// The reason given for a refused ABI version
// ---------------------------------------------------------------------------------------------

const MISMATCH_PREFIX: &[u8] =
    b"the host was built for another C ABI version; this matrix-leave library implements \
      MXL_ABI_VERSION ";

/// Room for the prefix, the ten digits a u32 can have, and the terminating NUL.
const MISMATCH_CAPACITY: usize = MISMATCH_PREFIX.len() + 10 + 1;

/// The prefix followed by MXL_ABI_VERSION in decimal, NUL-terminated (the unused tail is
/// NULs too). Built at compile time so the reason is a static string with the real number.
const fn mismatch_text() -> [u8; MISMATCH_CAPACITY] {
    let mut text = [0u8; MISMATCH_CAPACITY];
    let mut at = 0;
    while at < MISMATCH_PREFIX.len() {
        text[at] = MISMATCH_PREFIX[at];
        at += 1;
    }

    let mut digits = [0u8; 10];
    let (mut count, mut rest) = (0, MXL_ABI_VERSION);
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    while count > 0 {
        count -= 1;
        text[at] = digits[count];
        at += 1;
    }
    text
}

static MISMATCH: [u8; MISMATCH_CAPACITY] = mismatch_text();

// ---------------------------------------------------------------------------------------------
// The entry point
// ---------------------------------------------------------------------------------------------

/// The plugin entry point: the table of every export, for a host that loads the library
/// with `dlopen` and looks up this one symbol with `dlsym(lib, "mxl_plugin_get")`.
///
/// - `abi_version`: the MXL_ABI_VERSION of the header the host was compiled against.
/// - `out_reason`: NULL, or receives NULL on success and, on failure, a static
///   NUL-terminated message saying why (valid forever; do not free it).
///
/// Returns a pointer to a static `mxl_plugin_v1` when `abi_version` is the ABI version of
/// this library, and NULL otherwise: the host must then not call into the library, since
/// the types or calls it was compiled for differ. The table stays valid until the library
/// is unloaded; do not free it. Calling this again returns the same table.
///
/// A host declares the pointer type itself and converts the `dlsym` result without a cast
/// between object and function pointers, which ISO C does not allow:
///
/// ```c
/// typedef const mxl_plugin_v1 *(*get_fn)(uint32_t, const char **);
/// void *lib = dlopen("libmatrix_leave.so", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
/// void *sym = dlsym(lib, "mxl_plugin_get");
/// get_fn get;
/// memcpy(&get, &sym, sizeof get);
/// const char *reason;
/// const mxl_plugin_v1 *mxl = get(MXL_ABI_VERSION, &reason);
/// if (mxl == NULL) { fprintf(stderr, "%s\n", reason); return 1; }
/// printf("matrix-leave %s\n", mxl->version());
/// ```
///
/// Unloading loses a few bytes: the first call into the library installs a process-wide
/// wrapper around the Rust panic hook, which `dlclose` cannot free. Open the library with
/// `RTLD_NODELETE`, as `examples/c/plugin_host.c` does, or never close it.
///
/// # Safety
///
/// `out_reason` must be NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn mxl_plugin_get(
    abi_version: u32,
    out_reason: *mut *const c_char,
) -> *const mxl_plugin_v1 {
    guard_or(ptr::null(), || {
        let (table, reason): (*const mxl_plugin_v1, *const c_char) =
            if abi_version == MXL_ABI_VERSION {
                (&PLUGIN_V1, ptr::null())
            } else {
                (ptr::null(), MISMATCH.as_ptr().cast())
            };

        if !out_reason.is_null() {
            // SAFETY: non-NULL, and valid for writes by the caller's contract.
            unsafe { out_reason.write(reason) };
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// The header build.rs generates from these sources.
    const HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/matrix_leave.h"));

    #[test]
    fn the_table_is_handed_out_for_this_abi_version_only() {
        let mut reason: *const c_char = c"not cleared".as_ptr();
        // SAFETY: `reason` is writable.
        let table = unsafe { mxl_plugin_get(MXL_ABI_VERSION, &mut reason) };
        assert!(ptr::eq(table, &PLUGIN_V1));
        assert!(reason.is_null());
        // SAFETY: a NULL out_reason is allowed; the table is static.
        let again = unsafe { mxl_plugin_get(MXL_ABI_VERSION, ptr::null_mut()) };
        assert!(ptr::eq(again, table));
        let table = unsafe { &*table };
        assert_eq!(table.size, std::mem::size_of::<mxl_plugin_v1>());
        assert_eq!(unsafe { (table.abi_version)() }, MXL_ABI_VERSION);

        for wrong in [0, MXL_ABI_VERSION + 1, u32::MAX] {
            // SAFETY: as above.
            let table = unsafe { mxl_plugin_get(wrong, &mut reason) };
            assert!(table.is_null());
            // SAFETY: a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(reason) }.to_str().unwrap();
            assert_eq!(
                text,
                format!(
                    "the host was built for another C ABI version; this matrix-leave library \
                     implements MXL_ABI_VERSION {MXL_ABI_VERSION}"
                )
            );
            assert!(unsafe { mxl_plugin_get(wrong, ptr::null_mut()) }.is_null());
        }
    }

    /// The names of the functions the header declares, from lines such as
    /// `mxl_result mxl_redact(const uint8_t *json,` (declarations start in column 0;
    /// fields and parameters are indented).
    fn declared_functions(header: &str) -> Vec<&str> {
        header
            .lines()
            .filter(|line| !line.starts_with([' ', '\t', '#', '/', '*', 't', '}']))
            .filter_map(|line| {
                let open = line.find('(')?;
                let name = line[..open].rsplit([' ', '*']).next()?;
                name.starts_with("mxl_").then_some(name)
            })
            .collect()
    }

    /// The function pointer fields of `mxl_plugin_v1` in the header, in order.
    fn table_fields(header: &str) -> Vec<&str> {
        let end = header
            .find("} mxl_plugin_v1;")
            .expect("mxl_plugin_v1 in the header");
        let start = header[..end].rfind("typedef struct {").unwrap();
        header[start..end]
            .split("(*")
            .skip(1)
            .filter_map(|rest| rest.split_once(')').map(|(name, _)| name))
            .collect()
    }

    #[test]
    fn the_table_holds_every_export_under_its_short_name() {
        let functions = declared_functions(HEADER);
        assert!(functions.len() >= 50, "{functions:?}");
        assert!(functions.contains(&"mxl_plugin_get"));
        let expected: Vec<&str> = functions
            .iter()
            .filter(|f| **f != "mxl_plugin_get")
            .map(|f| &f["mxl_".len()..])
            .collect();
        let fields = table_fields(HEADER);
        let missing: Vec<_> = expected.iter().filter(|f| !fields.contains(f)).collect();
        let extra: Vec<_> = fields.iter().filter(|f| !expected.contains(f)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "mxl_plugin_v1 lacks {missing:?} and has unknown fields {extra:?}"
        );
    }
}
