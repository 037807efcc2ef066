/// The version of the C ABI. It goes up by one whenever an exported function, type or
/// constant changes in a way that breaks callers built against an older header; additions
/// do not change it. The header carries the same number as `MXL_ABI_VERSION`.
pub const MXL_ABI_VERSION: u32 = 1;
