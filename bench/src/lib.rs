//! Speed and memory of the embedded engine, measured: a synthetic CloudTrail generator
//! ([`synth`]), and the binaries that time the engine against DuckDB and against the
//! decompression floor (`gen-trail`, `bench-scan`; see BENCHMARKS.md).

pub mod synth;
