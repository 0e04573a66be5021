//! One self-contained HTML page for auditors: who changed what, at a glance.
//!
//! The page is a single file that opens offline in any browser: inline CSS, inline SVG charts
//! drawn here, one small inline script, no fetch of anything. A `Content-Security-Policy` meta
//! tag forbids every network access (`default-src 'none'`) and allows only this crate's own
//! style sheet and script, by hash; the favicon is `data:,` so the browser asks for none.
//!
//! - **Header**: window, instances, accounts, regions, source, generated at, tool version;
//!   counts of events, actors, users touched and failed attempts; ids that could not be named;
//!   the bad input the run skipped ([`RunContext`]); what the trail cannot show (admin-website
//!   changes CloudTrail does not record).
//! - **Charts**: changes per day stacked by category, top actors, failed attempts per day,
//!   and the privilege grants (security-profile and hierarchy changes), newest first.
//! - **Table**: every event, sortable, filterable and paged by the script; failed calls
//!   marked; event ids copyable; a click on a row shows every column.
//!
//! The records are streamed into a `<script type="application/json" id="audit-records">`
//! block as they are written, one array per record with the values of
//! [`COLUMNS`] in order (`event_time` in the configured zone, as in CSV). The header and the
//! charts come from running tallies, written in [`finish`](crate::Exporter::finish): memory
//! holds the tallies, never the records.
//!
//! Safety: values from the trail are attacker-controlled. In markup they are HTML-escaped
//! (`esc`); in the JSON block `<`, `>`, `&`, U+2028 and U+2029 are written as `\u003c` …,
//! so no value can end the block; the script puts values on the page with `textContent`
//! and DOM properties only.

mod charts;
mod spec;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use connect_audit_core::record::COLUMNS;
use connect_audit_core::{AuditRecord, Category, NameSource, TargetKind};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan as _};
use sha2::{Digest as _, Sha256};

use self::charts::{Bucket, CATEGORY_COLORS, FAILED_COLOR};
use crate::csv::is_utc;
use crate::local_output::{self, Output};
use crate::{Error, ExportSummary, Exporter, Row, RunContext};

pub use self::spec::HtmlSpec;

/// The page's style sheet.
const STYLE: &str = include_str!("report.css");
/// The page's script: the event table.
const SCRIPT: &str = concat!(include_str!("table.js"), include_str!("report.js"));
/// Privilege grants listed in the header section; older ones are in the table.
const MAX_GRANTS: usize = 100;
/// Actors in the "top actors" chart.
const TOP_ACTORS: usize = 10;
/// Unnamed ids listed; the count says how many more.
const MAX_UNRESOLVED: usize = 100;
/// Natural widths of the charts, in CSS pixels: one across the page, two side by side.
const WIDE_CHART: f64 = 1260.0;
const CHART: f64 = 620.0;
/// Bars of a time chart, at most: a longer window gets a bar per several days.
const MAX_BARS: i32 = 92;
/// What the trail cannot show, in every report's header: the page is evidence of what
/// CloudTrail recorded, and the Connect admin guide has said some admin-website changes never
/// reach it (README, "What the trail cannot show", quotes the guide).
const COVERAGE_NOTE: &str = r#"<p class="note" id="coverage"><b>What the trail cannot show.</b> This report holds what CloudTrail recorded, nothing else. The Amazon Connect Administrator Guide (“Logging Amazon Connect API calls with AWS CloudTrail”) has said that admin-website changes to users, queues and quick connects are logged, but changes to hours of operation, flows, phone numbers, user hierarchy, agent status and prompts only when made through the API or CLI. So user-hierarchy and agent-status changes made in the admin website may be missing: finding none here does not prove that none was made. The snapshot store’s change logs (<code>runs/</code>) and Connect itself show the directory as it is.</p>
"#;

/// Writes one self-contained HTML page of records (of a [`Row`] kind: the audit report of
/// audit records by default). Built from an [`HtmlSpec`].
pub struct HtmlExporter<R: Row = AuditRecord> {
    name: String,
    output: Output,
    json: Vec<u8>,
    rows: u64,
    page: Box<dyn Page<R>>,
}

impl<R: Row> std::fmt::Debug for HtmlExporter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtmlExporter")
            .field("name", &self.name)
            .field("records", &self.rows)
            .finish_non_exhaustive()
    }
}

/// The page of one kind of row: what the exporter streams into the page's JSON block, and
/// the markup around it. The exporter writes the head (policy, style sheet) and the block.
pub trait Page<R>: Send {
    /// The page's title and heading.
    fn title(&self) -> &str;

    /// The id of the JSON block the rows go to (`audit-records`).
    fn block_id(&self) -> &'static str;

    /// The page's script, allowed by its hash in the page's policy.
    fn script(&self) -> &'static str;

    /// The values of a row in the block: one array per row.
    fn values(&self, row: &R) -> Vec<Option<String>>;

    /// Counts a row for the header.
    fn add(&mut self, row: &R);

    /// What the run knows beyond its rows ([`Exporter::run_context`]).
    fn run_context(&mut self, run: &RunContext);

    /// The page after the JSON block, its `<script>` included, up to `</html>`.
    fn body(&mut self) -> String;
}

/// The audit report's page: header, charts, grants, the event table.
pub(crate) struct AuditPage {
    title: String,
    timezone: TimeZone,
    zone_name: String,
    utc: bool,
    page_size: usize,
    tally: Tally,
    run: RunContext,
}

/// What the header and charts need, counted as records go by.
#[derive(Default)]
struct Tally {
    events: u64,
    failed: u64,
    /// Changes per local day, a count per category (in `Category::ALL` order).
    per_day: BTreeMap<Date, [u64; Category::ALL.len()]>,
    failed_per_day: BTreeMap<Date, u64>,
    /// Actor key (id, else ARN, else name) → (label, changes).
    actors: HashMap<String, (String, u64)>,
    users: HashSet<String>,
    accounts: BTreeSet<String>,
    regions: BTreeSet<String>,
    instances: BTreeSet<String>,
    /// (kind, id) of ids nobody could name → events.
    unresolved: BTreeMap<(&'static str, String), u64>,
    grants: Vec<Grant>,
    grants_total: u64,
    /// The rows that tripped a rule (the newest [`MAX_GRANTS`] kept), and the rows per code.
    findings: Vec<Grant>,
    findings_per_code: BTreeMap<String, u64>,
    findings_total: u64,
}

/// Adds `row` to the newest rows kept, in amortised constant time per row.
fn keep_newest(rows: &mut Vec<Grant>, row: Grant) {
    rows.push(row);
    if rows.len() >= 2 * MAX_GRANTS {
        rows.sort_by_key(|g| std::cmp::Reverse(g.time));
        rows.truncate(MAX_GRANTS);
    }
}

impl Grant {
    fn of(record: &AuditRecord) -> Self {
        Self {
            time: record.event_time,
            actor: actor_label(record),
            action: record.event_name.clone(),
            target: target_label(record),
            change: record.change.clone(),
            detail: truncate(record.request_parameters.as_deref().unwrap_or(""), 240),
            error: record.error_code.clone(),
            event_id: record.event_id.clone(),
        }
    }
}

/// A security-profile or hierarchy change, for the privilege grants list; or a row that
/// tripped a rule, for the findings list.
struct Grant {
    time: Timestamp,
    actor: String,
    action: String,
    target: String,
    /// What changed, in names (the `change` column), when decoded.
    change: Option<String>,
    detail: String,
    error: Option<String>,
    event_id: String,
}

impl<R: Row> HtmlExporter<R> {
    /// Opens the output of a validated spec (a temporary file beside `spec.path`, or stdout
    /// for `-`); the page's head is written now, the rest as records come and in `finish`.
    pub(crate) fn create(spec: &HtmlSpec) -> Result<Self, Error> {
        let name = local_output::describe("html", &spec.path);
        let page = R::page(spec);
        let mut output = Output::open(&name, &spec.path)?;
        output.append(head(page.title(), page.script()).as_bytes())?;
        output.append(
            format!(
                r#"<script type="application/json" id="{}">["#,
                page.block_id()
            )
            .as_bytes(),
        )?;
        Ok(Self {
            name,
            output,
            json: Vec::with_capacity(2048),
            rows: 0,
            page,
        })
    }

    fn write_batch(&mut self, batch: &[R]) -> Result<(), Error> {
        for record in batch {
            let values = self.page.values(record);
            self.json.clear();
            if self.rows > 0 {
                self.json.push(b',');
            }
            self.json.push(b'\n');
            let serialised = serde_json::to_vec(&values).map_err(|source| Error::Json {
                exporter: self.name.clone(),
                event_id: record.key(),
                source,
            })?;
            push_script_safe(&mut self.json, &serialised);
            self.output.append(&self.json)?;
            self.page.add(record);
            self.rows += 1;
        }
        self.output.end_batch()
    }
}

impl AuditPage {
    pub(crate) fn new(spec: &HtmlSpec) -> Self {
        let timezone = TimeZone::get(&spec.timezone).expect("validated: an IANA time zone");
        Self {
            utc: is_utc(&spec.timezone, &timezone),
            zone_name: spec.timezone.clone(),
            timezone,
            title: spec.title.clone(),
            page_size: spec.page_size,
            tally: Tally::default(),
            run: RunContext::default(),
        }
    }

    fn local_date(&self, time: Timestamp) -> Date {
        self.timezone.to_datetime(time).date()
    }

    /// `2024-05-02 18:14:02`, in the report's zone.
    fn local_time(&self, time: Timestamp) -> String {
        self.timezone
            .to_datetime(time)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// The rest of the page, after the last record.
    fn page_body(&mut self) -> String {
        let mut grants = std::mem::take(&mut self.tally.grants);
        grants.sort_by_key(|g| std::cmp::Reverse(g.time));
        grants.truncate(MAX_GRANTS);
        let mut findings = std::mem::take(&mut self.tally.findings);
        findings.sort_by_key(|g| std::cmp::Reverse(g.time));
        findings.truncate(MAX_GRANTS);
        let t = &self.tally;
        let generated = self.run.generated_at.unwrap_or_else(Timestamp::now);
        let tool = if self.run.tool.is_empty() {
            concat!("connect-audit ", env!("CARGO_PKG_VERSION"))
        } else {
            &self.run.tool
        };
        let mut h = String::with_capacity(64 * 1024);
        let _ = write!(
            h,
            r#"<main id="report" data-columns="{}" data-page-size="{}" data-timezone="{}" data-records="{}">
<header>
<h1>{}</h1>
<p class="subtitle">Times in {}. Generated {} by {}.</p>
<dl class="facts">
<dt>Window</dt><dd>{}</dd>
<dt>Instances</dt><dd>{}</dd>
<dt>Accounts</dt><dd>{}</dd>
<dt>Regions</dt><dd>{}</dd>
"#,
            COLUMNS.join(","),
            self.page_size,
            esc(&self.zone_name),
            t.events,
            esc(&self.title),
            esc(&self.zone_name),
            esc(&self.local_time(generated)),
            esc(tool),
            esc(&self.window_text()),
            listing(&t.instances, &self.run.scope.instances),
            listing(&t.accounts, &self.run.scope.accounts),
            listing(&t.regions, &self.run.scope.regions),
        );
        if let Some(source) = &self.run.source {
            let _ = writeln!(h, "<dt>Events from</dt><dd>{}</dd>", esc(source));
        }
        if self.run.source.is_some() || self.run.snapshot.is_some() {
            let names = self.run.snapshot.as_deref().map_or_else(
                || "the trail only (no snapshot store)".to_owned(),
                |s| format!("the snapshot store {s}, then the trail"),
            );
            let _ = writeln!(h, "<dt>Names from</dt><dd>{}</dd>", esc(&names));
        }
        let _ = write!(
            h,
            r#"</dl>
<ul class="counts">
<li><b id="count-events">{}</b>events</li>
<li><b id="count-actors">{}</b>actors</li>
<li><b id="count-users">{}</b>users touched</li>
<li class="{}"><b id="count-failed">{}</b>failed attempts</li>
</ul>
"#,
            t.events,
            t.actors.len(),
            t.users.len(),
            if t.failed > 0 { "bad" } else { "ok" },
            t.failed,
        );
        if self.run.skipped_files > 0 || self.run.skipped_records > 0 {
            let _ = writeln!(
                h,
                r#"<p class="warning">Incomplete: {} bad trail files and {} bad records were skipped by the run; their events are not in this report.</p>"#,
                self.run.skipped_files, self.run.skipped_records
            );
        }
        if let Some(in_window) = self.run.events_in_window {
            let _ = writeln!(
                h,
                r#"<p class="note" id="run-counts">The run found {in_window} audited events in its window: {} written, {} already delivered by an earlier run (not repeated here), {} duplicate deliveries dropped.</p>"#,
                in_window.saturating_sub(self.run.already_delivered),
                self.run.already_delivered,
                self.run.duplicates,
            );
        }
        if self.run.late > 0 {
            let _ = writeln!(
                h,
                r#"<p class="warning" id="late-events">{} audited events older than the window were found in files delivered since the last run; they are not in this report (the run's log names them).</p>"#,
                self.run.late
            );
        }
        if let Some((line, failures)) = &self.run.integrity {
            let class = if failures.is_empty() {
                "note"
            } else {
                "warning"
            };
            let _ = writeln!(
                h,
                r#"<p class="{class}" id="integrity"><b>Integrity:</b> {}</p>"#,
                esc(line)
            );
            if !failures.is_empty() {
                h.push_str(r#"<ul class="integrity">"#);
                for f in failures {
                    let _ = write!(h, "<li>{}</li>", esc(f));
                }
                h.push_str("</ul>\n");
            }
        }
        h.push_str(COVERAGE_NOTE);
        h.push_str(&self.unresolved_section());
        h.push_str("</header>\n");
        h.push_str(&self.findings_section(&findings));
        h.push_str(&self.charts_section());
        h.push_str(&self.grants_section(&grants));
        h.push_str(&self.table_section());
        let _ = write!(
            h,
            "<footer>{} · every event of this page is also in its JSON block (<code>#audit-records</code>), one array per event with the columns of the audit record.</footer>\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            esc(tool)
        );
        h
    }

    fn window_text(&self) -> String {
        match self.run.window {
            Some(w) => format!(
                "{} – {} (until exclusive)",
                self.local_time(w.since),
                self.local_time(w.until)
            ),
            None => match (
                self.tally.per_day.keys().next(),
                self.tally.per_day.keys().last(),
            ) {
                (Some(first), Some(last)) => format!("the events' days, {first} – {last}"),
                _ => "not given; no events".to_owned(),
            },
        }
    }

    fn unresolved_section(&self) -> String {
        let t = &self.tally;
        if t.unresolved.is_empty() {
            return r#"<p class="unresolved" id="unresolved">Names: every actor and target was named.</p>
"#
            .to_owned();
        }
        let mut h = format!(
            r#"<div class="unresolved" id="unresolved">Names that could not be resolved ({}; in neither the snapshot store nor the trail):<ul>"#,
            plural(t.unresolved.len() as u64, "id")
        );
        for ((kind, id), events) in t.unresolved.iter().take(MAX_UNRESOLVED) {
            let _ = write!(
                h,
                "<li>{} <code>{}</code> ({})</li>",
                esc(kind),
                esc(id),
                plural(*events, "event")
            );
        }
        h.push_str("</ul>");
        if t.unresolved.len() > MAX_UNRESOLVED {
            let _ = write!(
                h,
                r#"<p class="note">and {} more: filter the table by "unresolved".</p>"#,
                t.unresolved.len() - MAX_UNRESOLVED
            );
        }
        h.push_str("</div>\n");
        h
    }

    /// The local days the charts cover: the window's, widened to the events' if need be.
    fn days(&self) -> Option<(Date, Date)> {
        let t = &self.tally;
        let mut first = t.per_day.keys().next().copied();
        let mut last = t.per_day.keys().last().copied();
        if let Some(w) = self.run.window {
            let end = w
                .until
                .checked_sub(SignedDuration::from_nanos(1))
                .unwrap_or(w.until);
            let (since, until) = (self.local_date(w.since), self.local_date(end.max(w.since)));
            first = Some(first.map_or(since, |d| d.min(since)));
            last = Some(last.map_or(until, |d| d.max(until)));
        }
        first.zip(last)
    }

    /// The time buckets of the charts: one per day, or per several days so that there are at
    /// most [`MAX_BARS`].
    fn buckets(&self, series: usize) -> (Vec<Bucket>, Vec<Bucket>) {
        let Some((first, last)) = self.days() else {
            return (Vec::new(), Vec::new());
        };
        let days = (last - first).get_days() + 1;
        let per = (days + MAX_BARS - 1) / MAX_BARS;
        let count = usize::try_from((days + per - 1) / per).unwrap_or(0);
        let mut changes = Vec::with_capacity(count);
        let mut failed = Vec::with_capacity(count);
        for i in 0..count {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let start = first.checked_add((i * per).days()).unwrap_or(last);
            let end = start
                .checked_add((per - 1).days())
                .unwrap_or(last)
                .min(last);
            let days = if start == end {
                start.to_string()
            } else {
                format!("{start} – {end}")
            };
            let label = start.strftime("%m-%d").to_string();
            changes.push(Bucket {
                label: label.clone(),
                days: days.clone(),
                counts: vec![0; series],
            });
            failed.push(Bucket {
                label,
                days,
                counts: vec![0],
            });
        }
        let index = |date: Date| {
            usize::try_from((date - first).get_days() / per)
                .unwrap_or(0)
                .min(count.saturating_sub(1))
        };
        for (date, counts) in &self.tally.per_day {
            let bucket = &mut changes[index(*date)].counts;
            for (total, n) in bucket.iter_mut().zip(counts) {
                *total += n;
            }
        }
        for (date, n) in &self.tally.failed_per_day {
            failed[index(*date)].counts[0] += n;
        }
        (changes, failed)
    }

    fn charts_section(&self) -> String {
        let t = &self.tally;
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        let (changes, failed) = self.buckets(names.len());
        let per = match changes.first() {
            Some(b) if b.days.contains('–') => "per bar (several days each)",
            _ => "per day",
        };
        let mut h = String::from("<section class=\"charts\" id=\"charts\">\n");
        // Only the categories that occur get a legend entry; colours stay fixed per category.
        let present: Vec<usize> = (0..names.len())
            .filter(|&i| t.per_day.values().any(|c| c[i] > 0))
            .collect();
        let legend_names: Vec<&str> = present.iter().map(|&i| names[i]).collect();
        let legend_colors: Vec<&str> = present.iter().map(|&i| CATEGORY_COLORS[i]).collect();
        let _ = writeln!(
            h,
            r#"<figure class="wide" id="chart-days"><figcaption>Changes {per}, by category</figcaption>{}{}</figure>"#,
            if changes.is_empty() {
                r#"<p class="note">No events.</p>"#.to_owned()
            } else {
                charts::columns(
                    &changes,
                    &names,
                    &CATEGORY_COLORS,
                    ("changes", &format!("Changes {per}, stacked by category")),
                    WIDE_CHART,
                )
            },
            charts::legend(&legend_names, &legend_colors),
        );
        let mut actors: Vec<(String, u64)> = t.actors.values().cloned().collect();
        actors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let more = actors.len().saturating_sub(TOP_ACTORS);
        actors.truncate(TOP_ACTORS);
        let _ = writeln!(
            h,
            r#"<figure id="chart-actors"><figcaption>Top actors by number of changes</figcaption>{}{}</figure>"#,
            if actors.is_empty() {
                r#"<p class="note">No events.</p>"#.to_owned()
            } else {
                charts::bars(
                    &actors,
                    "#0b5cad",
                    ("changes", "Top actors by number of changes"),
                    CHART,
                )
            },
            if more > 0 {
                format!(r#"<p class="note">and {more} more actors.</p>"#)
            } else {
                String::new()
            },
        );
        let _ = writeln!(
            h,
            r#"<figure id="chart-failed"><figcaption>Failed attempts {per}</figcaption>{}{}</figure>"#,
            if failed.is_empty() {
                r#"<p class="note">No events.</p>"#.to_owned()
            } else {
                charts::columns(
                    &failed,
                    &["failed"],
                    &[FAILED_COLOR],
                    ("failed attempts", &format!("Failed attempts {per}")),
                    CHART,
                )
            },
            if t.failed == 0 {
                r#"<p class="note">No failed attempts.</p>"#
            } else {
                ""
            },
        );
        h.push_str("</section>\n");
        h
    }

    /// The rows that tripped a rule of the findings, newest first, with the count per code.
    fn findings_section(&self, findings: &[Grant]) -> String {
        let total = self.tally.findings_total;
        let counts: Vec<String> = self
            .tally
            .findings_per_code
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        let mut h = format!(
            r#"<section id="findings"><h2>Findings <span class="note">rows that trip a rule, newest first ({total}{}{})</span></h2>
"#,
            if counts.is_empty() { "" } else { ": " },
            esc(&counts.join(", "))
        );
        self.rows_table(&mut h, findings, total, "Finding and action");
        h
    }

    fn grants_section(&self, grants: &[Grant]) -> String {
        let total = self.tally.grants_total;
        let mut h = format!(
            r#"<section id="grants"><h2>Privilege grants <span class="note">security-profile and hierarchy changes, newest first ({total})</span></h2>
"#
        );
        self.rows_table(&mut h, grants, total, "Action and event id");
        h
    }

    /// A table of `rows` (the newest of `total`) closing the section `h` opened.
    fn rows_table(&self, h: &mut String, rows: &[Grant], total: u64, action: &str) {
        let grants = rows;
        if grants.is_empty() {
            h.push_str("<p class=\"note\">None in this window.</p></section>\n");
            return;
        }
        let _ = writeln!(
            h,
            r#"<table class="fixed grants"><colgroup><col class="time"><col class="name"><col class="action"><col class="name"><col><col class="result"></colgroup><thead><tr><th>Time</th><th>Actor</th><th>{}</th><th>Target</th><th>Change</th><th>Result</th></tr></thead><tbody>"#,
            esc(action)
        );
        for g in grants {
            let _ = writeln!(
                h,
                r#"<tr{}><td class="time">{}</td><td>{}</td><td>{}<br><code class="id">{}</code></td><td>{}</td><td>{}<details><summary>request</summary><code>{}</code></details></td><td class="result">{}</td></tr>"#,
                if g.error.is_some() {
                    r#" class="failed""#
                } else {
                    ""
                },
                esc(&self.local_time(g.time)),
                esc(&g.actor),
                esc(&g.action),
                esc(&g.event_id),
                esc(&g.target),
                esc(g.change.as_deref().unwrap_or("")),
                esc(&g.detail),
                g.error
                    .as_deref()
                    .map_or_else(|| "✓ ok".to_owned(), |e| format!("✗ {}", esc(e))),
            );
        }
        h.push_str("</tbody></table>\n");
        if total > grants.len() as u64 {
            let _ = writeln!(
                h,
                r#"<p class="note">The {} newest of {total}; the table below has every one.</p>"#,
                grants.len()
            );
        }
        h.push_str("</section>\n");
    }

    fn table_section(&self) -> String {
        let mut options = String::from(r#"<option value="">every category</option>"#);
        for c in Category::ALL {
            let _ = write!(options, r#"<option value="{c}">{c}</option>"#);
        }
        format!(
            r#"<section id="table"><h2>Events</h2>
<div class="controls">
<input type="search" id="filter" placeholder="Filter: any text of an event (name, id, IP, error…)" aria-label="Filter the events">
<label><input type="checkbox" id="failed-only"> failed only</label>
<label>category <select id="category">{options}</select></label>
<span class="pager"><span id="shown" aria-live="polite"></span><button type="button" id="prev">‹ previous</button><button type="button" id="next">next ›</button></span>
</div>
<table id="events" class="fixed"><colgroup><col class="time"><col><col class="action"><col><col class="origin"><col class="result"><col class="id"></colgroup><thead><tr><th data-sort="time"><button type="button">Time ({})</button></th><th data-sort="actor"><button type="button">Actor</button></th><th data-sort="action"><button type="button">Action</button></th><th data-sort="target"><button type="button">Target</button></th><th data-sort="origin"><button type="button">Origin</button></th><th data-sort="result"><button type="button">Result</button></th><th data-sort="id"><button type="button">Event id</button></th></tr></thead>
<tbody></tbody></table>
<noscript><p class="warning">The table needs JavaScript. Every event is in this file's JSON block <code>#audit-records</code>.</p></noscript>
</section>
"#,
            esc(&self.zone_name)
        )
    }
}

impl Tally {
    fn add(&mut self, record: &AuditRecord, timezone: &TimeZone) {
        self.events += 1;
        let date = timezone.to_datetime(record.event_time).date();
        let category = Category::ALL
            .iter()
            .position(|c| *c == record.category)
            .unwrap_or(0);
        self.per_day.entry(date).or_default()[category] += 1;
        if record.error_code.is_some() {
            self.failed += 1;
            *self.failed_per_day.entry(date).or_default() += 1;
        }
        let key = record
            .actor_id
            .as_deref()
            .or(record.actor_arn.as_deref())
            .or(record.actor_name.as_deref())
            .unwrap_or("");
        let label = actor_label(record);
        match self.actors.get_mut(key) {
            Some((_, n)) => *n += 1,
            None => {
                self.actors.insert(key.to_owned(), (label, 1));
            }
        }
        if record.target_kind == TargetKind::User
            && let Some(id) = &record.target_id
            && !self.users.contains(id)
        {
            self.users.insert(id.clone());
        }
        for (set, value) in [
            (&mut self.accounts, Some(&record.account_id)),
            (&mut self.regions, Some(&record.region)),
            (&mut self.instances, record.instance_id.as_ref()),
        ] {
            if let Some(v) = value
                && !set.contains(v)
            {
                set.insert(v.clone());
            }
        }
        if record.name_source == NameSource::Unresolved {
            if record.actor_name.is_none()
                && let Some(id) = &record.actor_id
            {
                *self.unresolved.entry(("actor", id.clone())).or_default() += 1;
            }
            if record.target_name.is_none()
                && record.target_kind.is_named()
                && let Some(id) = &record.target_id
            {
                *self
                    .unresolved
                    .entry((record.target_kind.as_str(), id.clone()))
                    .or_default() += 1;
            }
        }
        if is_privilege_grant(record) {
            self.grants_total += 1;
            keep_newest(&mut self.grants, Grant::of(record));
        }
        if !record.findings.is_empty() {
            self.findings_total += 1;
            for code in &record.findings {
                *self.findings_per_code.entry(code.clone()).or_default() += 1;
            }
            let mut row = Grant::of(record);
            row.action = format!("{} · {}", record.findings.join(", "), record.event_name);
            keep_newest(&mut self.findings, row);
        }
    }
}

impl Page<AuditRecord> for AuditPage {
    fn title(&self) -> &str {
        &self.title
    }

    fn block_id(&self) -> &'static str {
        "audit-records"
    }

    fn script(&self) -> &'static str {
        SCRIPT
    }

    /// The values of [`COLUMNS`], `event_time` in the page's zone.
    fn values(&self, record: &AuditRecord) -> Vec<Option<String>> {
        let zone = (!self.utc).then_some(&self.timezone);
        COLUMNS.iter().map(|&c| record.cell(c, zone)).collect()
    }

    fn add(&mut self, record: &AuditRecord) {
        self.tally.add(record, &self.timezone);
    }

    fn run_context(&mut self, run: &RunContext) {
        self.run = run.clone();
    }

    fn body(&mut self) -> String {
        self.page_body()
    }
}

impl<R: Row> Exporter<R> for HtmlExporter<R> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn write(&mut self, batch: &[R]) -> Result<(), Error> {
        self.write_batch(batch)
    }

    fn run_context(&mut self, run: &RunContext) {
        self.page.run_context(run);
    }

    fn finish(mut self: Box<Self>) -> Result<ExportSummary, Error> {
        self.output.append(b"]</script>\n")?;
        let body = self.page.body();
        self.output.append(body.as_bytes())?;
        let outputs = self.output.finish()?;
        Ok(ExportSummary {
            exporter: self.name,
            records: self.rows,
            outputs,
        })
    }
}

/// Whether a record changes what users may do through security profiles or the hierarchy:
/// the rows an auditor checks first.
fn is_privilege_grant(record: &AuditRecord) -> bool {
    matches!(
        record.category,
        Category::SecurityProfile | Category::Hierarchy
    ) || record.event_name.contains("SecurityProfile")
        || record.event_name.contains("Hierarchy")
}

fn actor_label(record: &AuditRecord) -> String {
    record
        .actor_name
        .as_deref()
        .or(record.actor_id.as_deref())
        .or(record.actor_arn.as_deref())
        .unwrap_or("(unknown)")
        .to_owned()
}

fn target_label(record: &AuditRecord) -> String {
    let what = record
        .target_name
        .as_deref()
        .or(record.target_id.as_deref())
        .unwrap_or("");
    format!("{} {what}", record.target_kind)
        .trim_end()
        .to_owned()
}

/// The values seen, and the configured limit when there is one.
fn listing(seen: &BTreeSet<String>, limited_to: &[String]) -> String {
    let mut h = if seen.is_empty() {
        "none seen".to_owned()
    } else {
        seen.iter()
            .map(|v| format!("<code>{}</code>", esc(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !limited_to.is_empty() {
        let _ = write!(
            h,
            " (the run was limited to {})",
            esc(&limited_to.join(", "))
        );
    }
    h
}

/// The page up to `<body>`: the policy (allowing `script`), the favicon that is not fetched,
/// the style sheet.
pub(crate) fn head(title: &str, script: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="connect-audit {}">
<link rel="icon" href="data:,">
<title>{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
        policy_for(script),
        env!("CARGO_PKG_VERSION"),
        esc(title)
    )
}

/// No network access of any kind; only this crate's style sheet and script run (by hash, so
/// an injected `<script>` or `<style>` would not), images only as `data:` URLs.
pub fn content_security_policy() -> String {
    policy_for(SCRIPT)
}

/// [`content_security_policy`] of a page whose script is `script`.
pub(crate) fn policy_for(script: &str) -> String {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; img-src data:; base-uri 'none'; form-action 'none'",
        sha256(script),
        sha256(STYLE)
    )
}

/// `sha256-<base64>`, a CSP hash source.
fn sha256(text: &str) -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// `text` with `&`, `<`, `>`, `"` and `'` as character references: safe in element content
/// and in quoted attribute values.
pub(crate) fn esc(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `1 event`, `2 events`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Appends JSON text with `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes, so it can sit in
/// a `<script>` element: nothing in it can close the element or open a comment there. These
/// characters occur only inside JSON strings, where the escapes mean the same.
fn push_script_safe(out: &mut Vec<u8>, json: &[u8]) {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(br"\u003c"),
            b'>' => out.extend_from_slice(br"\u003e"),
            b'&' => out.extend_from_slice(br"\u0026"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    br"\u2028"
                } else {
                    br"\u2029"
                });
                i += 3;
                continue;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            esc(r#""><img src=x onerror=alert(1)>"#),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("it's & <b>"), "it&#39;s &amp; &lt;b&gt;");
        assert!(matches!(esc("alice.admin"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let value = "</script><script>alert(1)</script><!-- & \u{2028}\u{2029} é";
        let json = serde_json::to_vec(&[value]).unwrap();
        let mut safe = Vec::new();
        push_script_safe(&mut safe, &json);
        let text = String::from_utf8(safe).unwrap();
        assert!(
            !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "{text}"
        );
        assert!(text.contains(r"\u003c/script\u003e") && text.contains('é'));
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, [value], "the escapes mean the same string");
    }

    #[test]
    fn the_policy_allows_exactly_the_page_own_style_and_script() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let digest = STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
        assert!(
            csp.contains(&format!("script-src 'sha256-{digest}'")),
            "{csp}"
        );
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("</script") && !STYLE.contains("</style"));
    }

    #[test]
    fn the_header_says_what_the_trail_cannot_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.html");
        let spec = crate::ExporterSpec::Html(HtmlSpec::new(path.display().to_string()));
        let mut exporter = crate::build(&spec.validated().unwrap()).unwrap();
        exporter.write(&[]).unwrap();
        exporter.finish().unwrap();
        let page = std::fs::read_to_string(&path).unwrap();
        let header = &page[page.find("<header>").unwrap()..page.find("</header>").unwrap()];
        assert!(
            header.contains(r#"<p class="note" id="coverage">"#),
            "{header}"
        );
        for words in [
            "what CloudTrail recorded",
            "hours of operation, flows, phone numbers, user hierarchy, agent status and prompts",
            "only when made through the API or CLI",
            "may be missing",
        ] {
            assert!(header.contains(words), "{words}: {header}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(truncate("日本語テキスト", 3), "日本語…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
