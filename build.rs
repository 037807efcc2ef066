//! Generates the C header, `$OUT_DIR/matrix_leave.h`, with cbindgen.
//!
//! The build never writes into the source tree. A copy of the header is committed at
//! `include/matrix_leave.h`; `make header` refreshes it and `tests/header.rs` fails when the
//! copy and the generated header differ.

use std::env;
use std::path::PathBuf;

// The ABI version lives in one file that both the library and this script read.
#[path = "src/ffi/abi.rs"]
mod abi;

fn main() {
    let crate_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config_path = crate_dir.join("cbindgen.toml");

    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    // Set through RUSTFLAGS (see .cargo/config.toml) for curve25519-dalek; read by
    // keys::ed25519_backend to report the code in use.
    println!(
        "cargo::rustc-check-cfg=cfg(curve25519_dalek_backend, values(\"avx512\", \"simd\", \"serial\", \"fiat\"))"
    );

    let mut config = cbindgen::Config::from_file(&config_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", config_path.display()));
    config.after_includes = Some(version_macros());

    let header = out_dir.join("matrix_leave.h");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate the header: {e}"))
        .write_to_file(&header);

    println!("cargo:rustc-env=MXL_GENERATED_HEADER={}", header.display());
}

/// The version macros placed after the includes.
fn version_macros() -> String {
    let part = |name: &str| env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
    let (major, minor, patch) = (
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );
    format!(
        "\n/** The library version this header was generated from. */\n\
         #define MXL_VERSION_MAJOR {major}\n\
         #define MXL_VERSION_MINOR {minor}\n\
         #define MXL_VERSION_PATCH {patch}\n\
         #define MXL_VERSION \"{version}\"\n\
         \n\
         /** The C ABI version; compare with mxl_abi_version() at run time. */\n\
         #define MXL_ABI_VERSION {abi}\n\
         \n\
         /** Callback status: the answer was written with mxl_out_set (store_event: stored). */\n\
         #define MXL_CB_OK {ok}\n\
         /** Callback status: the thing asked for does not exist. */\n\
         #define MXL_CB_NOT_FOUND {not_found}\n\
         /** Callback status: the host failed; the library answers 500 M_UNKNOWN. */\n\
         #define MXL_CB_ERROR {error}\n",
        version = part("CARGO_PKG_VERSION"),
        abi = abi::MXL_ABI_VERSION,
        ok = abi::MXL_CB_OK,
        not_found = abi::MXL_CB_NOT_FOUND,
        error = abi::MXL_CB_ERROR,
    )
}
