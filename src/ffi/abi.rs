/// The version of the C ABI. It goes up by one whenever an exported function, type or
/// constant changes in a way that breaks callers built against an older header. New
/// functions do not change it; a new field in a struct the host allocates (callbacks,
/// config, params, transport) does, because an older host would pass a shorter struct. The
/// header carries the same number as `MXL_ABI_VERSION`.
pub const MXL_ABI_VERSION: u32 = 1;

/// Callback status: the answer was written with `mxl_out_set` (or, for `store_event`, the
/// event was stored).
pub const MXL_CB_OK: i32 = 0;
/// Callback status: the thing asked for does not exist.
pub const MXL_CB_NOT_FOUND: i32 = 1;
/// Callback status: the host failed; the library answers `500 M_UNKNOWN`.
pub const MXL_CB_ERROR: i32 = 2;
