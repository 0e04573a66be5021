//! Domain types of connect-audit: who changed which Amazon Connect user, and when.
//!
//! - [`AuditRecord`]: the one row per audited event every engine yields and every exporter
//!   writes, with its Arrow schema ([`record::arrow_schema`]).
//! - [`cloudtrail`]: parsing a CloudTrail record and finding its actor and target.
//! - [`catalogue`]: which Connect calls are audited, in groups.
//! - [`Directory`]: ids → names, from the snapshot store ([`store`]) and the trail itself.
//! - [`location`]: a local path or `s3://bucket/prefix`, the [`Store`] that reads and writes
//!   objects there, and atomic file output.
//!
//! ```
//! use connect_audit_core::cloudtrail::{parse_record, Parsed};
//! use connect_audit_core::{catalogue, Directory, NameSource, TargetKind};
//!
//! let raw = r#"{"eventTime":"2024-05-02T09:14:02Z","eventID":"e1",
//!   "eventSource":"connect.amazonaws.com","eventName":"DeleteUser","awsRegion":"us-east-1",
//!   "recipientAccountId":"111122223333",
//!   "userIdentity":{"type":"IAMUser","userName":"ops","principalId":"AIDA1"},
//!   "requestParameters":{"InstanceId":"i","UserId":"66666666-7777-8888-9999-000000000000"}}"#;
//! let Parsed::Connect(rec) = parse_record(raw).unwrap() else { unreachable!() };
//! let group = catalogue::group_of("DeleteUser").unwrap();
//! let mut rows = rec.to_audit_records(group, &Default::default()).unwrap();
//! let mut row = rows.remove(0);
//! let mut dir = Directory::new();
//! dir.insert_snapshot(TargetKind::User, "66666666-7777-8888-9999-000000000000", "jdoe");
//! dir.resolve(&mut row);
//! assert_eq!(row.target_name.as_deref(), Some("jdoe"));
//! assert_eq!(row.name_source, NameSource::Snapshot);
//! ```

pub mod access;
pub mod catalogue;
pub mod change;
pub mod cloudtrail;
pub mod directory;
pub mod error;
pub mod findings;
pub mod history;
pub mod ids;
pub mod integrity;
pub mod location;
pub mod objects;
pub mod record;
pub mod redact;
pub mod scope;
pub mod state;
pub mod store;
pub mod window;

pub use catalogue::{EventGroup, EventSelection};
pub use directory::Directory;
pub use error::Error;
pub use location::{AtomicFile, Location, ObjectInfo, Store, Unreadable, Walked};
pub use record::{ActorKind, AuditRecord, Category, ChangeBasis, NameSource, Origin, TargetKind};
pub use scope::Scope;
pub use state::{RunState, StateFile};
pub use window::Window;
