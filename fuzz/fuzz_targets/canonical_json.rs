//! Raw text -> parse (strict and lenient) -> canonical JSON.
//!
//! Properties: canonical output is UTF-8 and parses again in the same mode to the same
//! canonical bytes (the canonical form is a fixed point); whatever strict mode accepts,
//! lenient mode accepts with the same canonical form; a strict value survives its canonical
//! form unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_leave::json::{Mode, Value};

fn canonical_round_trip(data: &[u8], mode: Mode) -> Option<Vec<u8>> {
    let v = Value::parse(data, mode).ok()?;
    let once = v.to_canonical();
    assert!(
        std::str::from_utf8(&once).is_ok(),
        "canonical output is not UTF-8"
    );
    let again = Value::parse(&once, mode).unwrap_or_else(|e| {
        panic!(
            "{mode:?}: canonical output does not parse again: {e}\n{}",
            String::from_utf8_lossy(&once)
        )
    });
    let twice = again.to_canonical();
    assert_eq!(
        String::from_utf8_lossy(&once),
        String::from_utf8_lossy(&twice),
        "{mode:?}: canonical JSON is not idempotent"
    );
    if mode == Mode::Strict {
        assert_eq!(
            v, again,
            "a strict value changed through its canonical form"
        );
    }
    Some(once)
}

fuzz_target!(|data: &[u8]| {
    let strict = canonical_round_trip(data, Mode::Strict);
    let lenient = canonical_round_trip(data, Mode::Lenient);
    if let Some(s) = strict {
        let l = lenient.expect("strict mode accepted what lenient mode refused");
        assert_eq!(s, l, "strict and lenient canonical forms differ");
    }
});
