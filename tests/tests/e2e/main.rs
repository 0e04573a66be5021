//! End-to-end tests of connect-audit: one test binary, one module per area.

mod cli;
mod examples;
mod exporters;
mod scan;
