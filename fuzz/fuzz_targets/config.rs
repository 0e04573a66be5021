//! A config file, through loading, profiles, extraction and every command's validation.
#![no_main]

// Each target uses only its own part of the shared checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config(data));
