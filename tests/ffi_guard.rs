//! Every `extern "C" fn` under `src/ffi/` must run its whole body inside the panic guard
//! (`guard(...)` or `guard_or(...)`), so that a panic never unwinds into C.
//!
//! The check reads the sources: comments and literals are blanked out, then each exported
//! function's body must be exactly one call to a guard, with nothing before or after it.

use std::path::{Path, PathBuf};

/// The source with comments and the insides of string and char literals replaced by spaces,
/// so that braces and parentheses can be matched. Lengths and line breaks are kept.
fn mask(src: &str) -> Vec<char> {
    let s: Vec<char> = src.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < s.len() {
        let next = |k: usize| s.get(i + k).copied().unwrap_or('\0');
        if s[i] == '/' && next(1) == '/' {
            let end = (i..s.len()).find(|&k| s[k] == '\n').unwrap_or(s.len());
            blank(&mut out, i, end);
            i = end;
        } else if s[i] == '/' && next(1) == '*' {
            let (mut depth, mut k) = (1, i + 2);
            while k < s.len() && depth > 0 {
                if s[k] == '/' && s.get(k + 1) == Some(&'*') {
                    depth += 1;
                    k += 2;
                } else if s[k] == '*' && s.get(k + 1) == Some(&'/') {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            blank(&mut out, i, k);
            i = k;
        } else if let Some(end) = raw_string_end(&s, i).filter(|_| i == 0 || !is_ident(s[i - 1])) {
            blank(&mut out, i, end);
            i = end;
        } else if s[i] == '"' {
            let mut k = i + 1;
            while k < s.len() && s[k] != '"' {
                k += if s[k] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, k);
            i = k + 1;
        } else if s[i] == '\'' && next(1) == '\\' {
            let end = (i + 2..s.len()).find(|&k| s[k] == '\'').unwrap_or(s.len());
            blank(&mut out, i + 1, end);
            i = end + 1;
        } else if s[i] == '\'' && next(2) == '\'' {
            blank(&mut out, i + 1, i + 2);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// If a raw string literal (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`) starts at `i`, the index
/// just past it.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if matches!(s.get(k), Some('b' | 'c')) {
        k += 1;
    }
    if s.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = s[k..].iter().take_while(|&&c| c == '#').count();
    k += hashes;
    if s.get(k) != Some(&'"') {
        return None;
    }
    k += 1;
    while k < s.len() {
        if s[k] == '"'
            && s[k + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(s.len())
}

/// The index of the bracket closing the one at `open`.
fn matching(s: &[char], open: usize) -> usize {
    let (o, c) = (s[open], if s[open] == '(' { ')' } else { '}' });
    let mut depth = 0;
    for (k, &ch) in s.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    panic!("unbalanced {o} at {open}");
}

/// The names of the `extern "C" fn` items in `src` whose bodies are not one guard call.
fn unguarded(src: &str) -> (Vec<String>, usize) {
    let s = mask(src);
    let text: String = s.iter().collect();
    let mut bad = Vec::new();
    let mut count = 0;
    // Literals are blanked, so `extern "C"` reads as `extern " "` here.
    let marker = "extern \" \" fn ";
    let mut from = 0;
    while let Some(at) = text[from..].find(marker) {
        let start = from + at + marker.len();
        from = start;
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // a function pointer type, not an item
        }
        count += 1;
        // `text` is ASCII outside literals and comments, which are blanked, so byte and char
        // indices agree from here on.
        let open_paren = start + text[start..].find('(').expect("parameter list");
        let close_paren = matching(&s, open_paren);
        let open_body = close_paren + text[close_paren..].find('{').expect("function body");
        let close_body = matching(&s, open_body);
        let body = text[open_body + 1..close_body].trim();
        let guarded = ["guard(", "guard_or(", "super::guard(", "super::guard_or("]
            .iter()
            .find(|p| body.starts_with(**p))
            .is_some_and(|p| {
                let call_open =
                    open_body + 1 + text[open_body + 1..].find(*p).unwrap() + p.len() - 1;
                let call_close = matching(&s, call_open);
                text[call_close + 1..close_body].trim().is_empty()
            });
        if !guarded {
            bad.push(name);
        }
    }
    (bad, count)
}

fn ffi_sources() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_export_runs_inside_the_panic_guard() {
    let mut total = 0;
    let mut failures = Vec::new();
    for path in ffi_sources() {
        let src = std::fs::read_to_string(&path).unwrap();
        let (bad, count) = unguarded(&src);
        total += count;
        for name in bad {
            failures.push(format!("{}: {name}", path.display()));
        }
    }
    assert!(
        total >= 30,
        "found only {total} exports; is the scanner broken?"
    );
    assert!(
        failures.is_empty(),
        "these exports must make their whole body one guard(...) or guard_or(...) call:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_scanner_catches_unguarded_bodies() {
    let src = r##"
        /// Docs mentioning extern "C" fn in prose are ignored.
        #[no_mangle]
        pub extern "C" fn mxl_good(x: u32) -> u32 {
            guard_or(0, || { let s = "}{"; let c = '}'; let r = r#"{"#; x + s.len() as u32 })
        }
        #[no_mangle]
        pub unsafe extern "C" fn mxl_before(p: *const u8) -> Code {
            let _ = p;
            guard(ptr::null_mut(), || Ok(()))
        }
        #[no_mangle]
        pub extern "C" fn mxl_after() -> Code {
            guard(ptr::null_mut(), || Ok(()));
            Code::Ok
        }
        #[no_mangle]
        pub extern "C" fn mxl_none<'a>(cb: Option<unsafe extern "C" fn(u8)>) {
            drop(cb)
        }
    "##;
    let (bad, count) = unguarded(src);
    assert_eq!(count, 4);
    assert_eq!(bad, ["mxl_before", "mxl_after", "mxl_none"]);
}
