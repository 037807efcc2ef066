//! The committed header must match the one the build generates, carry the crate's version,
//! and export nothing without the `mxl_`/`MXL_` prefix.
//!
//! `build.rs` writes the generated header to `$OUT_DIR/matrix_leave.h`; Cargo sets `OUT_DIR`
//! for every target of a package with a build script, integration tests included.
//! Run with `MXL_WRITE_HEADER=1` (which `make header` does) to refresh the committed copy.

use std::path::{Path, PathBuf};

const GENERATED: &str = concat!(env!("OUT_DIR"), "/matrix_leave.h");

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include/matrix_leave.h")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_header_matches_the_generated_one() {
    let generated = read(Path::new(GENERATED));
    let committed_path = committed_path();
    if std::env::var_os("MXL_WRITE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed == generated {
        return;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "include/matrix_leave.h differs from the generated header (first at line {}).\n\
         Refresh the committed copy with:\n\n    make header\n\n\
         or directly:\n\n    cp '{GENERATED}' include/matrix_leave.h\n",
        first_difference + 1
    );
}

/// The value of `#define NAME value` in a header.
fn define<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.lines().find_map(|line| {
        let rest = line.strip_prefix("#define ")?.trim_start();
        let value = rest.strip_prefix(name)?;
        value.starts_with([' ', '\t']).then(|| value.trim())
    })
}

#[test]
fn version_macros_match_the_crate() {
    for header in [read(Path::new(GENERATED)), read(&committed_path())] {
        assert_eq!(
            define(&header, "MXL_VERSION_MAJOR"),
            Some(env!("CARGO_PKG_VERSION_MAJOR"))
        );
        assert_eq!(
            define(&header, "MXL_VERSION_MINOR"),
            Some(env!("CARGO_PKG_VERSION_MINOR"))
        );
        assert_eq!(
            define(&header, "MXL_VERSION_PATCH"),
            Some(env!("CARGO_PKG_VERSION_PATCH"))
        );
        let quoted = format!("\"{}\"", env!("CARGO_PKG_VERSION"));
        assert_eq!(define(&header, "MXL_VERSION"), Some(quoted.as_str()));
        let abi = matrix_leave::ffi::MXL_ABI_VERSION.to_string();
        assert_eq!(define(&header, "MXL_ABI_VERSION"), Some(abi.as_str()));
    }
    assert_eq!(
        matrix_leave::ffi::mxl_abi_version(),
        matrix_leave::ffi::MXL_ABI_VERSION
    );
    // SAFETY: mxl_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(matrix_leave::ffi::mxl_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn ed25519_backend_follows_the_cpu_and_the_build() {
    // curve25519-dalek takes its AVX-512 IFMA code when compiled in (the repository's
    // .cargo/config.toml asks for it on x86_64) and the CPU has AVX-512 IFMA and VL, else
    // AVX2 when the CPU has it, else its portable code.
    #[cfg(target_arch = "x86_64")]
    let expected = if cfg!(any(
        curve25519_dalek_backend = "serial",
        curve25519_dalek_backend = "fiat"
    )) {
        "serial"
    } else if std::arch::is_x86_feature_detected!("avx512ifma")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && cfg!(curve25519_dalek_backend = "avx512")
    {
        "avx512ifma"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        "avx2"
    } else {
        "serial"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let expected = "serial";
    assert_eq!(matrix_leave::keys::ed25519_backend(), expected);
    // SAFETY: mxl_ed25519_backend returns a static NUL-terminated string.
    let c = unsafe { std::ffi::CStr::from_ptr(matrix_leave::ffi::mxl_ed25519_backend()) };
    assert_eq!(c.to_str().unwrap(), expected);
}

/// The header without comments.
fn strip_comments(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .map_or(rest.len(), |e| start + e + 2);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .collect()
}

/// Top-level declarations: the text between semicolons outside braces.
fn declarations(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => {
                out.push(code[start..i].trim().trim_start_matches('}').trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// Every name the header declares: macros, enum, struct and union tags, enumerators,
/// typedefs and functions (but not fields or parameters).
fn declared_names(header: &str) -> Vec<String> {
    let text = strip_comments(header);
    let mut names = Vec::new();
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("#define") {
            names.extend(identifiers(rest).first().map(|s| s.to_string()));
        } else if !trimmed.starts_with('#') && trimmed != "extern \"C\" {" {
            code.push_str(line);
            code.push('\n');
        }
    }
    for declaration in declarations(&code) {
        if declaration.is_empty() {
            continue;
        }
        let (head, body, tail) = match (declaration.find('{'), declaration.rfind('}')) {
            (Some(open), Some(close)) => (
                &declaration[..open],
                &declaration[open + 1..close],
                &declaration[close + 1..],
            ),
            _ => (declaration, "", ""),
        };
        let words = identifiers(head);
        if let Some(tag) = words
            .iter()
            .position(|w| matches!(*w, "enum" | "struct" | "union"))
        {
            names.extend(words.get(tag + 1).map(|s| s.to_string()));
            if words[tag] == "enum" {
                // Enumerators: the first identifier of each comma-separated item.
                for item in body.split(',') {
                    names.extend(identifiers(item).first().map(|s| s.to_string()));
                }
            }
            // A typedef of a braced body names the type after the closing brace.
            names.extend(identifiers(tail).last().map(|s| s.to_string()));
            if !body.is_empty() || words.first() != Some(&"typedef") {
                continue;
            }
        }
        if let Some(pointer) = head.find("(*") {
            // A function pointer typedef: `typedef R (*name)(...)`.
            names.extend(identifiers(&head[pointer..]).first().map(|s| s.to_string()));
        } else if let Some(paren) = head.find('(') {
            names.extend(identifiers(&head[..paren]).last().map(|s| s.to_string()));
        } else if words.first() == Some(&"typedef") {
            names.extend(words.last().map(|s| s.to_string()));
        }
    }
    names.dedup();
    names
}

#[test]
fn every_exported_name_has_the_prefix() {
    let header = read(Path::new(GENERATED));
    let names = declared_names(&header);
    for expected in [
        "mxl_version",
        "mxl_result",
        "MXL_RESULT_OK",
        "mxl_bytes",
        "MXL_ABI_VERSION",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found in {names:?}"
        );
    }
    let allowed = ["MATRIX_LEAVE_H"];
    let bad: Vec<&String> = names
        .iter()
        .filter(|n| {
            !(n.starts_with("mxl_") || n.starts_with("MXL_") || allowed.contains(&n.as_str()))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "names in the header without the mxl_/MXL_ prefix: {bad:?}"
    );
}

#[test]
fn the_name_scanner_sees_declarations() {
    let names = declared_names(
        "#define FOO 1\n/* bar(x) */\nenum e { A = 1, B = 2, };\ntypedef uint32_t t;\n\
         int f(const char *param);\ntypedef struct s s;\n\
         typedef struct { const char *field; int (*cb)(void *u); } p;\n\
         typedef int32_t (*fp)(void *userdata, const p *query);\n\
         enum g\n : uint32_t\n { G = 0 };\n",
    );
    assert_eq!(
        names,
        ["FOO", "e", "A", "B", "t", "f", "s", "p", "fp", "g", "G"]
    );
}
