//! Snapshots the Amazon Connect user directory into the snapshot store.
//!
//! This crate is a documented skeleton: the snapshot command (paging `ListUsers`, optional
//! `DescribeUser`, profile and hierarchy names, writing `<root>/users/<id>.json` objects that
//! are never deleted) arrives with the snapshot issue. Until then a snapshot store can be
//! written by any tool that follows the layout in
//! [`connect_audit_core::store`], and the report reads it.

pub use connect_audit_core::store::FOLDERS;
