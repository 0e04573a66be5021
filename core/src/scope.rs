//! Which accounts, regions and instances a report covers: the same filter in both engines.

use crate::record::AuditRecord;

/// Accounts, regions and Connect instances a report is limited to. An empty list does not
/// limit. A record without an instance id is outside a scope that names instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Account ids (`account_id`).
    pub accounts: Vec<String>,
    /// Regions (`region`).
    pub regions: Vec<String>,
    /// Bare instance ids (`instance_id`), lower-case.
    pub instances: Vec<String>,
}

impl Scope {
    /// Whether the scope limits nothing.
    pub fn is_everything(&self) -> bool {
        self.accounts.is_empty() && self.regions.is_empty() && self.instances.is_empty()
    }

    /// Whether `record` is in the scope.
    pub fn admits(&self, record: &AuditRecord) -> bool {
        let within = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
        };
        within(&self.accounts, Some(&record.account_id))
            && within(&self.regions, Some(&record.region))
            && within(&self.instances, record.instance_id.as_deref())
    }
}
