//! `type = "html"`: the settings of the HTML report.

use serde::{Deserialize, Serialize};

use connect_audit_core::AuditRecord;

use super::HtmlExporter;
use crate::spec::{CredentialVars, Spec, Validated, path_field, timezone_problem, utc};
use crate::{Error, Exporter, RecordKind};

/// `type = "html"`: one self-contained HTML page (inline CSS, SVG and script; no network
/// access) with the run's header, charts and every event in a sortable, filterable table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtmlSpec {
    /// Output file, or `-` for stdout. Required.
    pub path: String,
    /// IANA time zone times and days are shown in, e.g. `Asia/Tokyo`. Default: `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The page's title and heading. Default: `Amazon Connect user changes`.
    #[serde(default = "html_title")]
    pub title: String,
    /// Rows per page of the event table (10 to 5000). Default: 100.
    #[serde(default = "html_page_size")]
    pub page_size: usize,
}

impl HtmlSpec {
    /// An HTML spec with defaults for everything but the path.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            timezone: utc(),
            title: html_title(),
            page_size: html_page_size(),
        }
    }

    /// The smallest and largest `page_size`: a page of a few thousand rows still renders at
    /// once, a larger one would make the browser wait for the whole window.
    pub const PAGE_SIZES: std::ops::RangeInclusive<usize> = 10..=5000;
}

impl Spec for HtmlSpec {
    path_field!();

    fn validate(&self, _kind: RecordKind) -> Vec<(&'static str, String)> {
        let mut problems: Vec<_> = timezone_problem(&self.timezone).into_iter().collect();
        if self.title.trim().is_empty() {
            problems.push(("title", "must not be empty".to_owned()));
        }
        if !Self::PAGE_SIZES.contains(&self.page_size) {
            problems.push((
                "page_size",
                format!(
                    "must be between {} and {}",
                    Self::PAGE_SIZES.start(),
                    Self::PAGE_SIZES.end()
                ),
            ));
        }
        problems
    }

    fn build(&self, _: Validated, _vars: &CredentialVars) -> Result<Box<dyn Exporter>, Error> {
        Ok(Box::new(HtmlExporter::<AuditRecord>::create(self)?))
    }
}

fn html_title() -> String {
    "Amazon Connect user changes".to_owned()
}

fn html_page_size() -> usize {
    100
}

#[cfg(test)]
mod html_tests {
    use super::*;
    use crate::ExporterSpec;

    #[test]
    fn html_spec_is_read_from_toml_with_defaults_and_validated() {
        let spec: ExporterSpec =
            toml::from_str("type = 'html'\npath = 'out/audit.html'\n").unwrap();
        assert_eq!(spec, ExporterSpec::Html(HtmlSpec::new("out/audit.html")));
        assert_eq!(spec.kind(), "html");
        let ExporterSpec::Html(html) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(html.timezone, "UTC");
        assert_eq!(html.page_size, 100);
        assert!(
            html.validate(RecordKind::Audit).is_empty(),
            "{:?}",
            html.validate(RecordKind::Audit)
        );
        let round_trip: ExporterSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(round_trip, spec);

        let bad = HtmlSpec {
            timezone: "Mars/Olympus".into(),
            title: " ".into(),
            page_size: 5,
            ..HtmlSpec::new("x.html")
        };
        let fields: Vec<_> = bad
            .validate(RecordKind::Audit)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["timezone", "title", "page_size"]);
        let unknown = toml::from_str::<ExporterSpec>("type = 'html'\npath = 'x'\ncolumns = []\n");
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
