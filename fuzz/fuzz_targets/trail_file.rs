//! A trail file, through the scanner's read, parse, filter and actor/target extraction.
#![no_main]

// Each target uses only its own part of the shared checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::trail_file(data));
