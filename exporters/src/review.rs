//! What the exporters write of an access review ([`Entitlement`] rows): its Parquet columns
//! and its HTML page. CSV and JSON Lines need nothing here: CSV writes
//! [`ENTITLEMENT_COLUMNS`] (the reviewer's `decision` and `decision_note` empty, to fill in),
//! JSON Lines each entitlement as it is, its security profiles a list of objects with their
//! grants.
//!
//! Parquet: one row per entitlement; times are `TIMESTAMP(MICROS, UTC)`,
//! `security_profiles` a list of structs (`id`, `name`, `privileged`, `grant_basis`,
//! `granted_by`, `granted_at`, `grant_event_id`).
//!
//! The HTML page: the review's time, period and trail read, a summary per instance, what the
//! trail cannot show, and every user in a table sortable, filterable and paged like the audit
//! report's, with a decision (keep / revoke) and a note per row that the reviewer can fill in
//! and download as CSV. Same safety as the audit report: values reach the page through the
//! escaped JSON block and `textContent` only; the policy allows no network access.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use connect_audit_core::access::{ENTITLEMENT_COLUMNS, Entitlement, ReviewSummary};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::csv::is_utc;
use crate::html::{HtmlSpec, Page, esc};
use crate::{Row, RunContext};

/// The page's script.
const SCRIPT: &str = concat!(
    include_str!("html/table.js"),
    include_str!("html/review.js")
);

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The fields of one held profile.
fn profile_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("privileged", DataType::Boolean, false),
        Field::new("grant_basis", DataType::Utf8, false),
        Field::new("granted_by", DataType::Utf8, true),
        Field::new("granted_at", time_type(), true),
        Field::new("grant_event_id", DataType::Utf8, true),
    ])
}

/// The Arrow schema of an access review's Parquet files.
pub fn arrow_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let time = |name: &str, nullable: bool| Field::new(name, time_type(), nullable);
    Arc::new(Schema::new(vec![
        time("review_at", false),
        text("instance_id"),
        Field::new("user_id", DataType::Utf8, false),
        text("username"),
        text("first_name"),
        text("last_name"),
        text("email"),
        Field::new_list(
            "security_profiles",
            Field::new("item", DataType::Struct(profile_fields()), true),
            true,
        ),
        Field::new("privileged", DataType::Boolean, false),
        text("routing_profile"),
        text("hierarchy_group"),
        time("last_change_at", true),
        text("last_change_event"),
        text("last_change_by"),
        text("last_change_event_id"),
        Field::new("sign_ins_in_period", DataType::Int64, false),
        time("last_sign_in", true),
        time("deleted_after", true),
        time("snapshot_at", true),
        time("trail_from", false),
    ]))
}

/// The rows as Arrow columns of [`arrow_schema`].
pub fn record_batch(rows: &[&Entitlement]) -> Result<RecordBatch, ArrowError> {
    let text = |value: fn(&Entitlement) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| value(r)).collect::<StringArray>())
    };
    let time = |value: fn(&Entitlement) -> Option<Timestamp>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| value(r).map(Timestamp::as_microsecond))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let fields = profile_fields();
    let builders: Vec<Box<dyn ArrayBuilder>> = vec![
        Box::new(StringBuilder::new()),
        Box::new(StringBuilder::new()),
        Box::new(BooleanBuilder::new()),
        Box::new(StringBuilder::new()),
        Box::new(StringBuilder::new()),
        Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        Box::new(StringBuilder::new()),
    ];
    let mut profiles = ListBuilder::new(StructBuilder::new(fields, builders));
    for row in rows {
        let Some(held) = &row.security_profiles else {
            profiles.append(false);
            continue;
        };
        let s = profiles.values();
        for p in held {
            let text = |s: &mut StructBuilder, i: usize, v: Option<&str>| {
                s.field_builder::<StringBuilder>(i)
                    .expect("a string field")
                    .append_option(v);
            };
            text(s, 0, Some(&p.id));
            text(s, 1, p.name.as_deref());
            s.field_builder::<BooleanBuilder>(2)
                .expect("a boolean field")
                .append_value(p.privileged);
            text(s, 3, Some(p.grant.basis.as_str()));
            text(s, 4, p.grant.by.as_deref());
            s.field_builder::<TimestampMicrosecondBuilder>(5)
                .expect("a time field")
                .append_option(p.grant.at.map(Timestamp::as_microsecond));
            text(s, 6, p.grant.event_id.as_deref());
            s.append(true);
        }
        profiles.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        time(|r| Some(r.review_at)),
        text(|r| r.instance_id.as_deref()),
        text(|r| Some(&r.user_id)),
        text(|r| r.username.as_deref()),
        text(|r| r.first_name.as_deref()),
        text(|r| r.last_name.as_deref()),
        text(|r| r.email.as_deref()),
        Arc::new(profiles.finish()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.privileged))
                .collect::<BooleanArray>(),
        ),
        text(|r| r.routing_profile.as_deref()),
        text(|r| r.hierarchy_group.as_deref()),
        time(|r| r.last_change.as_ref().map(|c| c.at)),
        text(|r| r.last_change.as_ref().map(|c| c.event_name.as_str())),
        text(|r| r.last_change.as_ref().and_then(|c| c.by.as_deref())),
        text(|r| r.last_change.as_ref().map(|c| c.event_id.as_str())),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| {
            i64::try_from(r.sign_ins_in_period).unwrap_or(i64::MAX)
        }))),
        time(|r| r.last_sign_in),
        time(|r| r.deleted_after),
        time(|r| r.snapshot_at),
        time(|r| Some(r.trail_from)),
    ];
    RecordBatch::try_new(arrow_schema(), columns)
}

/// What the review page says the trail cannot show.
const SIGN_IN_NOTE: &str = r#"<p class="note" id="coverage"><b>What the trail cannot show.</b> A row's state is the snapshot version it names, with every event of the trail read applied in order: changes CloudTrail does not record (admin-website changes to the user hierarchy, see the audit report) are missing from it. Sign-ins are the <code>GetFederationToken</code> calls the trail recorded; a sign-in to the admin website with a Connect password is not in CloudTrail, so “0” means no sign-in <em>recorded</em>. A grant reads <em>before trail</em> when the profile was already held in the snapshot the trail read starts from, and <em>unknown</em> when neither the trail nor the snapshot history can say who gave it.</p>
"#;

/// The access review's page.
pub(crate) struct ReviewPage {
    title: String,
    timezone: TimeZone,
    zone_name: String,
    utc: bool,
    page_size: usize,
    rows: u64,
    privileged: u64,
    run: RunContext,
}

impl ReviewPage {
    pub(crate) fn new(spec: &HtmlSpec) -> Self {
        let timezone = TimeZone::get(&spec.timezone).expect("validated: an IANA time zone");
        Self {
            utc: is_utc(&spec.timezone, &timezone),
            zone_name: spec.timezone.clone(),
            timezone,
            // The audit report's default title does not fit a review.
            title: if spec.title == HtmlSpec::new("").title {
                "Amazon Connect user access review".to_owned()
            } else {
                spec.title.clone()
            },
            page_size: spec.page_size,
            rows: 0,
            privileged: 0,
            run: RunContext::default(),
        }
    }

    fn time(&self, t: Timestamp) -> String {
        self.timezone
            .to_datetime(t)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn summary_section(review: &ReviewSummary) -> String {
        let mut h = String::from(
            r#"<section id="summary"><h2>Per instance</h2>
<table class="summary"><thead><tr><th>Instance</th><th>Users</th><th>Privileged holders</th><th>Grants in the period</th><th>Self-grants in the period</th><th>Without a recorded sign-in in the period</th><th>Created in the period</th><th>Deleted after the review time</th></tr></thead><tbody>
"#,
        );
        for s in &review.instances {
            let _ = writeln!(
                h,
                r#"<tr data-instance="{0}"><td>{0}</td><td class="n">{1}</td><td class="n">{2}</td><td class="n">{3}</td><td class="n{8}">{4}</td><td class="n">{5}</td><td class="n">{6}</td><td class="n">{7}</td></tr>"#,
                esc(s.instance_id.as_deref().unwrap_or("(instance not known)")),
                s.users,
                s.privileged_holders,
                s.grants_in_period,
                s.self_grants_in_period,
                s.without_sign_in,
                s.created_in_period,
                s.deleted_after,
                if s.self_grants_in_period > 0 {
                    " bad"
                } else {
                    ""
                },
            );
        }
        h.push_str("</tbody></table></section>\n");
        h
    }
}

impl Page<Entitlement> for ReviewPage {
    fn title(&self) -> &str {
        &self.title
    }

    fn block_id(&self) -> &'static str {
        "review-records"
    }

    fn script(&self) -> &'static str {
        SCRIPT
    }

    fn values(&self, row: &Entitlement) -> Vec<Option<String>> {
        let zone = (!self.utc).then_some(&self.timezone);
        ENTITLEMENT_COLUMNS
            .iter()
            .map(|&c| row.cell(c, zone))
            .collect()
    }

    fn add(&mut self, row: &Entitlement) {
        self.rows += 1;
        self.privileged += u64::from(row.privileged);
    }

    fn run_context(&mut self, run: &RunContext) {
        self.run = run.clone();
    }

    fn body(&mut self) -> String {
        let generated = self.run.generated_at.unwrap_or_else(Timestamp::now);
        let tool = if self.run.tool.is_empty() {
            concat!("connect-audit ", env!("CARGO_PKG_VERSION"))
        } else {
            &self.run.tool
        };
        let mut h = String::with_capacity(16 * 1024);
        let review = self.run.review.clone();
        let _ = write!(
            h,
            r#"<main id="review" data-columns="{}" data-page-size="{}" data-timezone="{}" data-records="{}">
<header>
<h1>{}</h1>
<p class="subtitle">Times in {}. Generated {} by {}.</p>
<dl class="facts">
"#,
            ENTITLEMENT_COLUMNS.join(","),
            self.page_size,
            esc(&self.zone_name),
            self.rows,
            esc(&self.title),
            esc(&self.zone_name),
            esc(&self.time(generated)),
            esc(tool),
        );
        if let Some(r) = &review {
            let _ = write!(
                h,
                "<dt>As of</dt><dd id=\"review-at\">{}</dd>\n<dt>Review period</dt><dd>{} – {}</dd>\n<dt>Trail read</dt><dd>{} – {} (from the last snapshot observation at or before the period's start)</dd>\n",
                esc(&self.time(r.at)),
                esc(&self.time(r.since)),
                esc(&self.time(r.at)),
                esc(&self.time(r.trail_from)),
                esc(&self.time(r.at)),
            );
        }
        if let Some(source) = &self.run.source {
            let _ = writeln!(h, "<dt>Events from</dt><dd>{}</dd>", esc(source));
        }
        let snapshot = self.run.snapshot.as_deref().map_or_else(
            || "none: states from the trail only".to_owned(),
            ToOwned::to_owned,
        );
        let _ = writeln!(h, "<dt>Snapshot store</dt><dd>{}</dd>", esc(&snapshot));
        let _ = write!(
            h,
            r#"</dl>
<ul class="counts">
<li><b id="count-users">{}</b>users</li>
<li class="{}"><b id="count-privileged">{}</b>privileged holders</li>
</ul>
"#,
            self.rows,
            if self.privileged > 0 { "bad" } else { "ok" },
            self.privileged,
        );
        if self.run.skipped_files > 0 || self.run.skipped_records > 0 {
            let _ = writeln!(
                h,
                r#"<p class="warning">Incomplete: {} bad trail files and {} bad records were skipped; the events in them are not applied to the states and grants of this review.</p>"#,
                self.run.skipped_files, self.run.skipped_records
            );
        }
        h.push_str(SIGN_IN_NOTE);
        h.push_str("</header>\n");
        if let Some(r) = &review {
            h.push_str(&Self::summary_section(r));
        }
        let _ = write!(
            h,
            r#"<section id="table"><h2>Users</h2>
<div class="controls">
<input type="search" id="filter" placeholder="Filter: any text of a user (name, e-mail, profile, grantor…)" aria-label="Filter the users">
<label><input type="checkbox" id="privileged-only"> privileged only</label>
<label><input type="checkbox" id="undecided-only"> undecided only</label>
<button type="button" id="download">Download CSV with decisions</button>
<span class="pager"><span id="shown" aria-live="polite"></span><button type="button" id="prev">‹ previous</button><button type="button" id="next">next ›</button></span>
</div>
<table id="users" class="fixed"><colgroup><col class="w15"><col class="w9"><col class="w13"><col class="w19"><col class="w8"><col class="w8"><col class="w10"><col class="w5"><col class="w6"><col class="w7"></colgroup><thead><tr><th data-sort="user"><button type="button">User</button></th><th data-sort="instance"><button type="button">Instance</button></th><th data-sort="profiles"><button type="button">Security profiles</button></th><th data-sort="grants"><button type="button">Granted</button></th><th data-sort="routing"><button type="button">Routing profile</button></th><th data-sort="group"><button type="button">Hierarchy group</button></th><th data-sort="change"><button type="button">Last change ({0})</button></th><th data-sort="signins" title="Sign-ins (GetFederationToken) the trail recorded in the review period"><button type="button">Sign-ins</button></th><th data-sort="status"><button type="button">Status</button></th><th>Decision</th></tr></thead>
<tbody></tbody></table>
<noscript><p class="warning">The table needs JavaScript. Every user is in this file's JSON block <code>#review-records</code>.</p></noscript>
</section>
<footer>{1} · every user of this page is also in its JSON block (<code>#review-records</code>), one array per user with the columns of the access review's CSV.</footer>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"#,
            esc(&self.zone_name),
            esc(tool),
        );
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_audit_core::access::{Grant, GrantBasis, HeldProfile};

    #[test]
    fn record_batch_has_the_review_schema_with_profiles_as_structs() {
        let at: Timestamp = "2024-06-30T00:00:00Z".parse().unwrap();
        let row = Entitlement {
            review_at: at,
            instance_id: Some("i-1".into()),
            user_id: "u1".into(),
            username: Some("kenji".into()),
            first_name: None,
            last_name: None,
            email: None,
            security_profiles: Some(vec![HeldProfile {
                id: "p1".into(),
                name: Some("Admin".into()),
                privileged: true,
                grant: Grant {
                    basis: GrantBasis::Trail,
                    by: Some("alice".into()),
                    at: Some(at),
                    event_id: Some("e1".into()),
                },
            }]),
            privileged: true,
            routing_profile: None,
            hierarchy_group: None,
            last_change: None,
            sign_ins_in_period: 2,
            last_sign_in: None,
            deleted_after: None,
            snapshot_at: None,
            trail_from: at,
        };
        let mut unknown = row.clone();
        unknown.security_profiles = None;
        let batch = record_batch(&[&row, &unknown]).unwrap();
        assert_eq!(batch.schema(), arrow_schema());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(7).null_count(), 1, "profiles not known: null");
        assert_eq!(
            row.cell("grants", None).as_deref(),
            Some("Admin: granted by alice at 2024-06-30T00:00:00Z (event e1)")
        );
    }
}
