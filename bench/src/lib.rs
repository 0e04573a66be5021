//! Speed and memory of the embedded engine, measured: a synthetic CloudTrail generator
//! ([`synth`]), and the binaries that time the engine against DuckDB and against the
//! decompression floor (`gen-trail`, `bench-scan`); also the HTML report's render time in
//! Chromium (`bench-html`), the snapshot from the fake Connect into S3 (`bench-snapshot`) and
//! the SIEM webhook exporter into a local receiver (`bench-siem`). See BENCHMARKS.md.

pub mod synth;
