//! An exporter that keeps records in memory, for tests of code that drives exporters.

use std::sync::{Arc, Mutex, PoisonError};

use connect_audit_core::AuditRecord;

use crate::{Error, ExportSummary, Exporter};

/// The records a [`MemoryExporter`] has been given, shared with whoever created it.
pub type MemoryRecords = Arc<Mutex<Vec<AuditRecord>>>;

/// Appends every record it is given to a shared `Vec`, for tests.
///
/// ```
/// use connect_audit_exporters::{Exporter, MemoryExporter};
///
/// let (exporter, records) = MemoryExporter::new();
/// let summary = Box::new(exporter).finish().unwrap();
/// assert_eq!(summary.records, 0);
/// assert!(records.lock().unwrap().is_empty());
/// ```
#[derive(Debug)]
pub struct MemoryExporter {
    records: MemoryRecords,
    written: u64,
}

impl MemoryExporter {
    /// A new exporter and the handle to the records it will collect.
    pub fn new() -> (Self, MemoryRecords) {
        let records = MemoryRecords::default();
        let exporter = Self {
            records: Arc::clone(&records),
            written: 0,
        };
        (exporter, records)
    }
}

impl Exporter for MemoryExporter {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn write(&mut self, batch: &[AuditRecord]) -> Result<(), Error> {
        // A test that panicked while holding the lock must not hide the records it wrote.
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.extend_from_slice(batch);
        self.written += batch.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<ExportSummary, Error> {
        Ok(ExportSummary {
            exporter: self.describe(),
            records: self.written,
            outputs: Vec::new(),
        })
    }
}
