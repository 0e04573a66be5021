//! The join query: CloudTrail × snapshot → audit records, in Athena's SQL (Trino).
//!
//! It computes the same record as the local engine, column for column, from the same rules:
//! targets come from [`target_rule`] (the table [`Target::of`] reads), actors from the role
//! session name (never a fixed `substring`), names from the snapshot tables and from the
//! create/rename events of the trail, with the snapshot winning. It also reproduces the local
//! engine's order: rows by trail file, then event time; rows a name was still missing for when
//! their file was read come last, named from the whole trail (see
//! [`crate::local`]).
//!
//! Every value from configuration (window, delivery dates, accounts, regions, instance ids,
//! event names) is a `?` placeholder with its value in [`Query::parameters`]; the SQL text
//! holds only identifiers checked by `connect-audit-config` and constants of this crate.
//!
//! [`Target::of`]: connect_audit_core::cloudtrail::Target::of

use std::collections::BTreeMap;
use std::fmt::Write as _;

use connect_audit_core::catalogue::{CONNECT_EVENT_SOURCE, GROUPS};
use connect_audit_core::cloudtrail::{
    CONNECT_ROLE_PREFIX, Field, MAX_TARGETS, SYNC_ROLE_PREFIX, TargetRule, target_rule,
};
use connect_audit_core::record::ENGINE_COLUMNS as COLUMNS;
use connect_audit_core::redact::SECRET_KEYS;
use connect_audit_core::{EventSelection, Scope, TargetKind, Window};
use jiff::tz::TimeZone;

use super::ddl::{SNAPSHOT_TABLES, VIEW};
use super::settings::ValidAthena;

/// A query and its execution parameters (Athena literals, in placeholder order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The SQL text, with `?` placeholders.
    pub sql: String,
    /// One Athena literal per placeholder, e.g. `'2024-05-01T00:00:00Z'`.
    pub parameters: Vec<String>,
}

impl Query {
    /// The query followed by its parameters as `--` comment lines, for people to read or to
    /// paste into the Athena console (which asks for the values).
    pub fn annotated(&self) -> String {
        let mut text = self.sql.clone();
        text.push_str(";\n");
        for (i, p) in self.parameters.iter().enumerate() {
            let _ = writeln!(text, "-- parameter {}: {p}", i + 1);
        }
        text
    }
}

/// The columns every result row has, in order: the engine columns of the audit record, then the trail file the
/// row came from and, for a record the local engine would reject, why.
pub const RESULT_COLUMNS: [&str; COLUMNS.len() + 2] = {
    let mut out = [""; COLUMNS.len() + 2];
    let mut i = 0;
    while i < COLUMNS.len() {
        out[i] = COLUMNS[i];
        i += 1;
    }
    out[COLUMNS.len()] = "trail_file";
    out[COLUMNS.len() + 1] = "problem";
    out
};

/// An Athena string literal. Values reach the SQL only this way, and only as parameters.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A SQL string literal for a constant of this crate (event names, prefixes, patterns).
fn constant(value: &str) -> String {
    debug_assert!(!value.contains('\''));
    format!("'{value}'")
}

/// `"db"."name"`.
fn table(athena: &ValidAthena, name: &str) -> String {
    format!("\"{}\".\"{name}\"", athena.database)
}

/// The named target kinds, as SQL constants: those the Directory keeps.
fn named_kinds() -> String {
    [
        TargetKind::User,
        TargetKind::HierarchyGroup,
        TargetKind::SecurityProfile,
        TargetKind::RoutingProfile,
    ]
    .iter()
    .map(|k| constant(k.as_str()))
    .collect::<Vec<_>>()
    .join(", ")
}

/// A field of the request or response, as SQL over the JSON text columns.
fn field_sql(field: Field) -> String {
    let extract = |column: &str, key: &str| {
        format!(
            "json_extract_scalar({column}, {})",
            constant(&format!("$.{key}"))
        )
    };
    match field {
        Field::Request(key) => extract("requestparameters", key),
        Field::Response(key) => extract("responseelements", key),
        Field::ResponseEither(a, b) => format!(
            "coalesce({}, {})",
            extract("responseelements", a),
            extract("responseelements", b)
        ),
    }
}

/// Connect ARN patterns, as [`connect_audit_core::ids::parse_connect_arn`] reads ARNs.
const ARN_HEAD: &str = "^arn:[^:]*:connect:[^:]*:[^:]*:instance/";

/// SQL for [`connect_audit_core::ids::bare_id`]: an ARN of a user, hierarchy group, security or
/// routing profile → its id; an instance ARN → the instance id; anything else unchanged.
fn bare_id_sql(expr: &str) -> String {
    let known =
        format!("{ARN_HEAD}[^/]+/(?:agent|agent-group|security-profile|routing-profile)/([^/]+)$");
    let instance = format!("{ARN_HEAD}([^/]+)$");
    format!(
        "coalesce(regexp_extract({expr}, {}, 1), regexp_extract({expr}, {}, 1), {expr})",
        constant(&known),
        constant(&instance)
    )
}

/// SQL for [`connect_audit_core::ids::decode_id`]: a percent-encoded value is decoded
/// (`url_decode`) when it holds only escapes of printable ASCII and no `+`, and decodes to an
/// ARN or a UUID; anything else is kept as recorded. Nested `CASE`s, so `url_decode` never
/// sees a value it would refuse.
fn decode_id_sql(expr: &str) -> String {
    let escapes = constant("^(?:[^%+]|%[2-7][0-9A-Fa-f])*$");
    let decoded_id = constant(
        "^(?:arn:|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$)",
    );
    format!(
        "CASE WHEN strpos({expr}, '%') > 0 AND regexp_like({expr}, {escapes}) THEN \
         CASE WHEN regexp_like(url_decode({expr}), {decoded_id}) THEN url_decode({expr}) ELSE {expr} END \
         ELSE {expr} END"
    )
}

/// SQL for the kind of target an ARN names (the `Arn` rule).
fn arn_kind_sql(expr: &str) -> String {
    let kinds = format!("{ARN_HEAD}[^/]+/([^/]*)/([^/]+)$");
    format!(
        "CASE WHEN {expr} IS NULL THEN 'none' ELSE coalesce(CASE regexp_extract({expr}, {}, 1) \
         WHEN 'agent' THEN 'user' WHEN 'agent-group' THEN 'hierarchy_group' \
         WHEN 'security-profile' THEN 'security_profile' WHEN 'routing-profile' THEN 'routing_profile' END, \
         'resource') END",
        constant(&kinds)
    )
}

/// The calls naming several targets ([`TargetRule::ArnList`]), by the request key of their
/// list.
fn list_rules() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut lists: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for name in catalogue_names() {
        if let TargetRule::ArnList(key) = target_rule(name) {
            lists.entry(key).or_default().push(name);
        }
    }
    lists
}

/// `CASE event_name WHEN <list call> THEN <sql of its key> … END` over the list calls.
fn list_case(sql: impl Fn(&str) -> String) -> String {
    if list_rules().is_empty() {
        return "NULL".to_owned();
    }
    let mut case = String::from("CASE eventname");
    for (key, events) in list_rules() {
        for event in events {
            let _ = write!(case, " WHEN {} THEN {}", constant(event), sql(key));
        }
    }
    case.push_str(" END");
    case
}

/// Every catalogued event name, in catalogue order.
fn catalogue_names() -> impl Iterator<Item = &'static str> {
    GROUPS.iter().flat_map(|g| g.events.iter().copied())
}

/// What the query filters on; `None` (the view) filters on nothing but the catalogue.
struct Filters<'a> {
    window: Window,
    events: &'a EventSelection,
    scope: &'a Scope,
}

/// Collects parameters while the SQL is written.
#[derive(Default)]
struct Params(Vec<String>);

impl Params {
    /// A placeholder for `value`.
    fn one(&mut self, value: &str) -> &'static str {
        self.0.push(literal(value));
        "?"
    }

    /// `?, ?, ?` for the values.
    fn list<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) -> String {
        values
            .into_iter()
            .map(|v| self.one(v))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The audit query for a window, event selection and scope. `with_snapshot` joins the
/// snapshot tables (created by `athena init` when a snapshot store is configured).
pub fn audit_query(
    athena: &ValidAthena,
    window: Window,
    events: &EventSelection,
    scope: &Scope,
) -> Query {
    let mut params = Params::default();
    let filters = Filters {
        window,
        events,
        scope,
    };
    let mut sql = body(athena, Some(&filters), &mut params);
    sql.push_str("\nORDER BY NOT ready, trail_file, ts, event_id, target_index");
    Query {
        sql,
        parameters: params.0,
    }
}

/// The SELECT of the view `connect_user_audit`: every catalogued event of the whole table,
/// the same columns and rules as [`audit_query`], no parameters.
pub fn view_select(athena: &ValidAthena) -> String {
    let mut params = Params::default();
    let sql = body(athena, None, &mut params);
    debug_assert!(params.0.is_empty());
    sql
}

/// `CREATE OR REPLACE VIEW "db"."connect_user_audit" AS …`.
pub fn create_view(athena: &ValidAthena) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{}",
        table(athena, VIEW),
        view_select(athena)
    )
}

/// The delivery dates (`yyyy/MM/dd`) the window's files may carry: one day of slack each
/// side, as the local engine prunes.
fn delivery_dates(window: Window) -> (String, String) {
    let day = |t: jiff::Timestamp| t.to_zoned_datetime(TimeZone::UTC).date();
    let first = day(window.since).yesterday().unwrap_or(day(window.since));
    let last = day(window.until).tomorrow().unwrap_or(day(window.until));
    (
        first.strftime("%Y/%m/%d").to_string(),
        last.strftime("%Y/%m/%d").to_string(),
    )
}

/// The CTEs and final SELECT shared by the query and the view, written in query order (the
/// parameters are collected in the order of their placeholders).
fn body(athena: &ValidAthena, filters: Option<&Filters<'_>>, params: &mut Params) -> String {
    let mut s = String::new();
    write_trail_cte(&mut s, athena, filters, params);
    write_learned_cte(&mut s);
    write_audited_cte(&mut s, filters, params);
    write_actor_ctes(&mut s);
    write_rules_cte(&mut s);
    write_target_ctes(&mut s);
    write_records_cte(&mut s);
    write_deduped_cte(&mut s, filters, params);
    write_trail_name_ctes(&mut s);
    let with_snapshot = athena.snapshot.is_some();
    if with_snapshot {
        write_snapshot_names_cte(&mut s, athena);
    }
    write_naming_ctes(&mut s, with_snapshot);
    write_select(&mut s);
    s
}

/// `WITH trail AS (…)`: the Connect events of the files the window may hold (delivery dates,
/// accounts, regions), flattened.
fn write_trail_cte(
    s: &mut String,
    athena: &ValidAthena,
    filters: Option<&Filters<'_>>,
    params: &mut Params,
) {
    let iso = constant(
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$",
    );
    let _ = write!(
        s,
        "WITH trail AS (\n  SELECT \"$path\" AS trail_file, eventid AS event_id, eventname AS event_name, eventtime,\n    \
         awsregion AS aws_region, coalesce(recipientaccountid, useridentity.accountid) AS account_id,\n    \
         sourceipaddress, useragent, errorcode, errormessage, requestparameters, responseelements,\n    \
         useridentity.type AS id_type, useridentity.principalid AS id_principal, useridentity.arn AS id_arn,\n    \
         useridentity.username AS id_username, useridentity.invokedby AS id_invoked_by,\n    \
         useridentity.sessioncontext.sessionissuer.username AS id_issuer,\n    \
         useridentity IS NULL AS no_identity,\n    \
         CASE WHEN regexp_like(eventtime, {iso}) THEN from_iso8601_timestamp(eventtime) END AS ts,\n    \
         {list_size} AS list_size, {list_key} AS list_key\n  \
         FROM {}\n  WHERE eventsource = {}",
        table(athena, &athena.table),
        constant(CONNECT_EVENT_SOURCE),
        list_size = list_case(|key| format!(
            "json_size(requestparameters, {})",
            constant(&format!("$.{key}"))
        )),
        list_key = list_case(constant),
    );
    if let Some(f) = filters {
        let (first, last) = delivery_dates(f.window);
        let _ = write!(
            s,
            "\n    AND \"date\" BETWEEN {} AND {}",
            params.one(&first),
            params.one(&last)
        );
        let accounts = if f.scope.accounts.is_empty() {
            &athena.accounts
        } else {
            &f.scope.accounts
        };
        let regions = if f.scope.regions.is_empty() {
            &athena.regions
        } else {
            &f.scope.regions
        };
        let _ = write!(
            s,
            "\n    AND \"account\" IN ({})\n    AND \"region\" IN ({})",
            params.list(accounts.iter().map(String::as_str)),
            params.list(regions.iter().map(String::as_str)),
        );
    }
    s.push_str("\n),\n");
}

/// `learned`: the names the trail teaches, by id: successful creates and renames.
fn write_learned_cte(s: &mut String) {
    let teaching: Vec<(&str, TargetRule)> = catalogue_names()
        .map(|n| (n, target_rule(n)))
        .filter(|(_, r)| r.teaches_name())
        .collect();
    let mut learned_id = String::from("CASE event_name");
    let mut learned_name = String::from("CASE event_name");
    for (name, rule) in &teaching {
        if let TargetRule::Fixed {
            id, name: Some(n), ..
        } = rule
        {
            let _ = write!(
                learned_id,
                " WHEN {} THEN {}",
                constant(name),
                field_sql(*id)
            );
            let _ = write!(
                learned_name,
                " WHEN {} THEN {}",
                constant(name),
                field_sql(*n)
            );
        }
    }
    learned_id.push_str(" END");
    learned_name.push_str(" END");
    let _ = write!(
        s,
        "learned AS (\n  SELECT lower({}) AS id, name, trail_file, ts FROM (\n    \
         SELECT trail_file, ts, name, {} AS decoded_id FROM (\n    \
         SELECT trail_file, ts, {learned_id} AS raw_id,\n      {learned_name} AS name\n    \
         FROM trail WHERE errorcode IS NULL AND event_name IN ({})\n  ) taught WHERE raw_id IS NOT NULL AND name IS NOT NULL\n  ) decoded\n),\n",
        bare_id_sql("decoded_id"),
        decode_id_sql("raw_id"),
        teaching
            .iter()
            .map(|(n, _)| constant(n))
            .collect::<Vec<_>>()
            .join(", "),
    );
}

/// `audited`: the selected events in the window, with the problem the local engine would
/// report (such rows are kept whatever their time).
fn write_audited_cte(s: &mut String, filters: Option<&Filters<'_>>, params: &mut Params) {
    let _ = write!(
        s,
        "audited AS (\n  SELECT t.*,\n    CASE WHEN event_id IS NULL THEN 'missing `eventID`'\n      \
         WHEN eventtime IS NULL THEN 'missing `eventTime`'\n      \
         WHEN ts IS NULL THEN concat('unparseable eventTime `', eventtime, '`')\n      \
         WHEN no_identity THEN 'missing `userIdentity`'\n      \
         WHEN aws_region IS NULL THEN 'missing `awsRegion`'\n      \
         WHEN account_id IS NULL THEN 'missing `recipientAccountId`'\n      \
         WHEN list_size > {MAX_TARGETS} THEN '`requestParameters.' || list_key || '` names ' || CAST(list_size AS varchar) || ' targets, more than the {MAX_TARGETS} the Connect API accepts' END AS problem,\n    \
         regexp_extract(id_arn, ':assumed-role/([^/]*)/', 1) AS arn_role,\n    \
         regexp_extract(id_arn, '(?s):assumed-role/[^/]*/(.*)$', 1) AS arn_session\n  \
         FROM trail t\n  WHERE event_name IN ("
    );
    match filters {
        Some(f) => s.push_str(&params.list(f.events.names())),
        None => s.push_str(
            &catalogue_names()
                .map(constant)
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
    s.push_str(")\n");
    if let Some(f) = filters {
        let _ = write!(
            s,
            "    AND (ts IS NULL OR event_id IS NULL OR no_identity OR aws_region IS NULL OR account_id IS NULL OR list_size > {MAX_TARGETS}\n      \
             OR (ts >= from_iso8601_timestamp({}) AND ts < from_iso8601_timestamp({})))\n",
            params.one(&f.window.since.to_string()),
            params.one(&f.window.until.to_string()),
        );
    }
    s.push_str("),\n");
}

/// `actors` and `actor_kinds`: the role behind the session, the session name, and the kind of
/// actor they make.
fn write_actor_ctes(s: &mut String) {
    let _ = write!(
        s,
        "actors AS (\n  SELECT a.*,\n    coalesce(id_issuer, arn_role, '') AS role,\n    \
         coalesce(arn_session, regexp_extract(id_principal, '(?s)^[^:]*:(.*)$', 1)) AS session\n  \
         FROM audited a\n),\n"
    );
    let _ = write!(
        s,
        "actor_kinds AS (\n  SELECT a.*,\n    CASE WHEN starts_with(role, {sync}) OR id_type = 'AWSService' THEN 'service'\n      \
         WHEN starts_with(role, {connect}) THEN 'connect_user' ELSE 'iam' END AS actor_kind\n  \
         FROM actors a\n),\n",
        sync = constant(SYNC_ROLE_PREFIX),
        connect = constant(CONNECT_ROLE_PREFIX),
    );
}

/// The target rule, reference and name of every catalogued event, as `CASE event_name`
/// expressions: `(target_rule, target_ref_raw, target_name_raw)`.
fn target_cases() -> (String, String, String) {
    let mut rule_case = String::from("CASE event_name");
    let mut ref_case = String::from("CASE event_name");
    let mut name_case = String::from("CASE event_name");
    for name in catalogue_names() {
        let (tag, reference, target_name) = match target_rule(name) {
            TargetRule::Fixed { kind, id, name } => (kind.as_str(), field_sql(id), name),
            TargetRule::Arn(key) => ("arn", field_sql(Field::Request(key)), None),
            // The list's entries are read one per target row (`targets`).
            TargetRule::ArnList(_) => ("arn", "CAST(NULL AS varchar)".to_owned(), None),
            TargetRule::UserOrNone(Field::Request("UserId")) => continue,
            TargetRule::UserOrNone(field) => ("user_id", field_sql(field), None),
        };
        let n = constant(name);
        let _ = write!(rule_case, " WHEN {n} THEN {}", constant(tag));
        let _ = write!(ref_case, " WHEN {n} THEN {reference}");
        if let Some(field) = target_name {
            let _ = write!(name_case, " WHEN {n} THEN {}", field_sql(field));
        }
    }
    rule_case.push_str(" ELSE 'user_id' END");
    let _ = write!(
        ref_case,
        " ELSE {} END",
        field_sql(Field::Request("UserId"))
    );
    name_case.push_str(" END");
    (rule_case, ref_case, name_case)
}

/// `CASE event_name …`: the category of every catalogued event, from its group.
fn category_case() -> String {
    let mut category = String::from("CASE event_name");
    for group in GROUPS {
        for name in group.events {
            let _ = write!(
                category,
                " WHEN {} THEN {}",
                constant(name),
                constant(group.category.as_str())
            );
        }
    }
    category.push_str(" END");
    category
}

/// `rules`: target by rule, category by group, instance.
fn write_rules_cte(s: &mut String) {
    let (rule_case, ref_case, name_case) = target_cases();
    let category = category_case();
    let _ = write!(
        s,
        "rules AS (\n  SELECT k.*,\n    {category} AS category,\n    {rule_case} AS target_rule,\n    \
         {ref_case} AS target_ref_raw,\n    {name_case} AS target_name_raw,\n    \
         {instance_ref} AS instance_ref\n  FROM actor_kinds k\n),\n",
        instance_ref = decode_id_sql(&field_sql(Field::Request("InstanceId"))),
    );
}

/// `indexed` and `targets`: one row per target: the list entries of a call that names several
/// (at most MAX_TARGETS, refused in `audited` when more), else the one target.
fn write_target_ctes(s: &mut String) {
    let mut list_ref = String::from("CASE");
    for (key, events) in list_rules() {
        let mut entries = String::from("CASE n.target_index");
        for i in 0..MAX_TARGETS {
            let _ = write!(
                entries,
                " WHEN {i} THEN json_extract_scalar(requestparameters, {})",
                constant(&format!("$.{key}[{i}]"))
            );
        }
        entries.push_str(" END");
        let _ = write!(
            list_ref,
            " WHEN event_name IN ({}) THEN {entries}",
            events
                .iter()
                .map(|e| constant(e))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    list_ref.push_str(" ELSE target_ref_raw END");
    let _ = write!(
        s,
        "indexed AS (\n  SELECT r.*, n.target_index, {list_ref} AS target_ref_any\n  \
         FROM rules r CROSS JOIN (VALUES {}) AS n(target_index)\n  \
         WHERE n.target_index = 0 OR (r.problem IS NULL AND n.target_index < r.list_size)\n),\n\
         targets AS (\n  SELECT i.*, {} AS target_ref\n  FROM indexed i\n),\n",
        (0..MAX_TARGETS)
            .map(|i| format!("({i})"))
            .collect::<Vec<_>>()
            .join(", "),
        decode_id_sql("target_ref_any"),
    );
}

/// `records`: the actor's id and name, the target's kind and id, the instance and the origin.
fn write_records_cte(s: &mut String) {
    let uuid =
        constant("^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})");
    let instance_in_arn = constant(&format!("{ARN_HEAD}([^/]+)"));
    let _ = write!(
        s,
        "records AS (\n  SELECT r.*,\n    \
         CASE actor_kind WHEN 'service' THEN session\n      \
         WHEN 'connect_user' THEN lower(coalesce(regexp_extract(session, {uuid}, 1), session))\n      \
         ELSE id_principal END AS actor_id,\n    \
         CASE actor_kind WHEN 'service' THEN coalesce(id_invoked_by, nullif(role, ''))\n      \
         WHEN 'connect_user' THEN NULL\n      \
         ELSE CASE id_type WHEN 'IAMUser' THEN id_username WHEN 'Root' THEN 'root' ELSE coalesce(session, id_username) END END AS actor_name_raw,\n    \
         CASE target_rule WHEN 'arn' THEN {arn_kind}\n      \
         WHEN 'user_id' THEN CASE WHEN target_ref IS NULL THEN 'none' ELSE 'user' END\n      \
         ELSE target_rule END AS target_kind,\n    \
         {target_id} AS target_id,\n    \
         coalesce({instance}, CASE WHEN target_rule = 'arn' THEN regexp_extract(target_ref, {instance_in_arn}, 1) END) AS instance_id,\n    \
         CASE WHEN actor_kind = 'connect_user' OR useragent = {src} OR sourceipaddress = {src} THEN 'console' ELSE 'api' END AS origin\n  \
         FROM targets r\n),\n",
        arn_kind = arn_kind_sql("target_ref"),
        target_id = bare_id_sql("target_ref"),
        instance = bare_id_sql("instance_ref"),
        src = constant(CONNECT_EVENT_SOURCE),
    );
}

/// `deduped`: the scope (accounts, regions, instances), then one row per event id and target:
/// the first delivery in trail order.
fn write_deduped_cte(s: &mut String, filters: Option<&Filters<'_>>, params: &mut Params) {
    s.push_str("deduped AS (\n  SELECT * FROM (\n    SELECT c.*, row_number() OVER (PARTITION BY event_id, target_index ORDER BY trail_file, ts) AS copy\n    FROM records c");
    if let Some(f) = filters {
        let mut conditions = Vec::new();
        if !f.scope.accounts.is_empty() {
            conditions.push(format!(
                "account_id IN ({})",
                params.list(f.scope.accounts.iter().map(String::as_str))
            ));
        }
        if !f.scope.regions.is_empty() {
            conditions.push(format!(
                "aws_region IN ({})",
                params.list(f.scope.regions.iter().map(String::as_str))
            ));
        }
        if !f.scope.instances.is_empty() {
            conditions.push(format!(
                "lower(instance_id) IN ({})",
                params.list(f.scope.instances.iter().map(String::as_str))
            ));
        }
        if !conditions.is_empty() {
            let _ = write!(
                s,
                "\n    WHERE problem IS NOT NULL OR ({})",
                conditions.join(" AND ")
            );
        }
    }
    s.push_str("\n  ) copies WHERE copy = 1 OR event_id IS NULL\n),\n");
}

/// `lookups` and `trail_names`: the names the trail gives each row's actor and target, as the
/// local engine knew them when it read the row's file ("now") or after the whole trail
/// ("final").
fn write_trail_name_ctes(s: &mut String) {
    let named = named_kinds();
    let _ = write!(
        s,
        "lookups AS (\n  SELECT event_id, target_index, 'actor' AS who, actor_id AS id, trail_file FROM deduped\n    \
         WHERE problem IS NULL AND actor_kind = 'connect_user' AND actor_id IS NOT NULL\n  UNION ALL\n  \
         SELECT event_id, target_index, 'target' AS who, lower(target_id) AS id, trail_file FROM deduped\n    \
         WHERE problem IS NULL AND target_kind IN ({named}) AND target_id IS NOT NULL\n),\n\
         trail_names AS (\n  SELECT event_id, target_index, who,\n    max(CASE WHEN now_rank = 1 THEN name END) AS name_now,\n    \
         max(CASE WHEN final_rank = 1 THEN name END) AS name_final\n  FROM (\n    \
         SELECT k.event_id, k.target_index, k.who, l.name,\n      \
         CASE WHEN l.trail_file <= k.trail_file THEN row_number() OVER (PARTITION BY k.event_id, k.target_index, k.who, l.trail_file <= k.trail_file ORDER BY l.trail_file DESC, l.ts DESC) END AS now_rank,\n      \
         row_number() OVER (PARTITION BY k.event_id, k.target_index, k.who ORDER BY l.trail_file DESC, l.ts DESC) AS final_rank\n    \
         FROM lookups k JOIN learned l ON l.id = k.id\n  ) ranked GROUP BY event_id, target_index, who\n),\n"
    );
}

/// The columns of [`snapshot_names_query`]'s rows.
pub const NAMES_COLUMNS: [&str; 3] = ["kind", "id", "name"];

/// Every name of the snapshot tables, with the kind of what it names (`user`,
/// `security_profile`, `routing_profile`, `hierarchy_group`), for the change stage to name the
/// ids inside requests as the local engine's does; `None` without a snapshot store.
pub fn snapshot_names_query(athena: &ValidAthena) -> Option<Query> {
    athena.snapshot.as_ref()?;
    let [users, security, routing, hierarchy] = SNAPSHOT_TABLES.map(|(t, _, _)| t);
    let sql = format!(
        "SELECT kind, id, name FROM (\n  \
         SELECT 'user' AS kind, id, username AS name FROM {}\n  \
         UNION ALL SELECT 'security_profile' AS kind, id, name FROM {}\n  \
         UNION ALL SELECT 'routing_profile' AS kind, id, name FROM {}\n  \
         UNION ALL SELECT 'hierarchy_group' AS kind, id, name FROM {}\n\
         ) names WHERE id IS NOT NULL AND name IS NOT NULL ORDER BY kind, id",
        table(athena, users),
        table(athena, security),
        table(athena, routing),
        table(athena, hierarchy),
    );
    Some(Query {
        sql,
        parameters: Vec::new(),
    })
}

/// The columns of [`history_query`]'s rows.
pub const HISTORY_COLUMNS: [&str; 4] = ["folder", "observedat", "object", "path"];

/// Every version of the snapshot's history table, for the change stage to start each target
/// from as the local engine does; `None` without a snapshot store.
pub fn history_query(athena: &ValidAthena) -> Option<Query> {
    athena.snapshot.as_ref()?;
    Some(Query {
        sql: format!(
            "SELECT folder, observedat, object, \"$path\" AS path FROM {}",
            table(athena, super::ddl::HISTORY_TABLE)
        ),
        parameters: Vec::new(),
    })
}

/// `snapshot_names`: every name of the snapshot tables, by lower-case id (only with a snapshot
/// store).
fn write_snapshot_names_cte(s: &mut String, athena: &ValidAthena) {
    let [users, security, routing, hierarchy] = SNAPSHOT_TABLES.map(|(t, _, _)| t);
    let _ = write!(
        s,
        "snapshot_names AS (\n  SELECT lower(id) AS id, min(name) AS name FROM (\n    \
         SELECT id, username AS name FROM {}\n    UNION ALL SELECT id, name FROM {}\n    \
         UNION ALL SELECT id, name FROM {}\n    UNION ALL SELECT id, name FROM {}\n  \
         ) names WHERE id IS NOT NULL AND name IS NOT NULL GROUP BY lower(id)\n),\n",
        table(athena, users),
        table(athena, security),
        table(athena, routing),
        table(athena, hierarchy),
    );
}

/// `named`, `readiness`, `resolved` and `sourced`: each row's snapshot and trail names, whether
/// it was ready when its file was read, the trail name that applies, and where each name
/// comes from.
fn write_naming_ctes(s: &mut String, with_snapshot: bool) {
    let named = named_kinds();
    let (actor_snap, target_snap, snapshot_joins) = if with_snapshot {
        (
            "sa.name",
            "st.name",
            format!(
                "\n  LEFT JOIN snapshot_names sa ON d.actor_kind = 'connect_user' AND sa.id = d.actor_id\n  \
                 LEFT JOIN snapshot_names st ON d.target_kind IN ({named}) AND st.id = lower(d.target_id)"
            ),
        )
    } else {
        (
            "CAST(NULL AS varchar)",
            "CAST(NULL AS varchar)",
            String::new(),
        )
    };
    let _ = write!(
        s,
        "named AS (\n  SELECT d.*, {actor_snap} AS actor_snap, ta.name_now AS actor_now, ta.name_final AS actor_final,\n    \
         {target_snap} AS target_snap, tt.name_now AS target_now, tt.name_final AS target_final\n  \
         FROM deduped d{snapshot_joins}\n  \
         LEFT JOIN trail_names ta ON ta.event_id = d.event_id AND ta.target_index = d.target_index AND ta.who = 'actor'\n  \
         LEFT JOIN trail_names tt ON tt.event_id = d.event_id AND tt.target_index = d.target_index AND tt.who = 'target'\n),\n\
         readiness AS (\n  SELECT n.*,\n    \
         (actor_kind <> 'connect_user' OR coalesce(actor_snap, actor_now) IS NOT NULL)\n      \
         AND (target_kind NOT IN ({named}) OR coalesce(target_snap, target_now, target_name_raw) IS NOT NULL) AS ready\n  \
         FROM named n\n),\n\
         resolved AS (\n  SELECT r.*,\n    \
         CASE WHEN ready THEN actor_now ELSE actor_final END AS actor_trail,\n    \
         CASE WHEN ready THEN target_now ELSE target_final END AS target_trail\n  \
         FROM readiness r\n),\n\
         sourced AS (\n  SELECT r.*,\n    \
         CASE WHEN actor_kind <> 'connect_user' OR actor_snap IS NOT NULL THEN 0 WHEN actor_trail IS NOT NULL THEN 1 ELSE 2 END AS actor_source,\n    \
         CASE WHEN target_kind NOT IN ({named}) OR target_snap IS NOT NULL THEN 0\n      \
         WHEN target_trail IS NOT NULL OR target_name_raw IS NOT NULL THEN 1 ELSE 2 END AS target_source\n  \
         FROM resolved r\n)\n"
    );
}

/// The final SELECT: the record's columns (then `trail_file` and `problem`) from `sourced`.
///
/// The secret credentials are masked in the SQL too, so the view never shows them; the
/// engine then removes the keys (and any `report.redact_keys`) when it reads the rows.
fn write_select(s: &mut String) {
    let named = named_kinds();
    let secrets = constant(&format!(
        r#"(?i)("(?:{})"\s*:\s*)"(?:[^"\\]|\\.)*""#,
        SECRET_KEYS
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join("|")
    ));
    let _ = write!(
        s,
        "SELECT ts AS event_time, event_id, target_index, event_name, category, account_id, aws_region AS region, instance_id,\n  \
         actor_kind, actor_id,\n  \
         CASE WHEN actor_kind = 'connect_user' THEN coalesce(actor_snap, actor_trail) ELSE actor_name_raw END AS actor_name,\n  \
         id_arn AS actor_arn, target_kind, target_id,\n  \
         CASE WHEN target_kind IN ({named}) THEN coalesce(target_snap, target_trail, target_name_raw) ELSE target_name_raw END AS target_name,\n  \
         CASE WHEN actor_kind <> 'connect_user' AND target_kind NOT IN ({named}) THEN 'trail'\n    \
         WHEN actor_source = 2 OR target_source = 2 THEN 'unresolved'\n    \
         WHEN actor_source = 1 OR target_source = 1 THEN 'trail' ELSE 'snapshot' END AS name_source,\n  \
         origin, sourceipaddress AS source_ip, useragent AS user_agent, errorcode AS error_code, errormessage AS error_message,\n  \
         regexp_replace(requestparameters, {secrets}, '$1\"***\"') AS request_parameters,\n  \
         regexp_replace(responseelements, {secrets}, '$1\"***\"') AS response_elements, trail_file, problem\n\
         FROM sourced"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::athena::settings::S3Path;

    pub(crate) fn athena() -> ValidAthena {
        ValidAthena {
            database: "connect_audit".into(),
            table: "cloudtrail".into(),
            workgroup: "primary".into(),
            output_location: None,
            aws_logs: S3Path {
                bucket: "trail".into(),
                prefix: "AWSLogs".into(),
            },
            organization_id: None,
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into()],
            projection_start: jiff::civil::date(2020, 1, 1),
            snapshot: Some(S3Path {
                bucket: "snap".into(),
                prefix: String::new(),
            }),
            lake: None,
            timeout: std::time::Duration::from_mins(1),
            poll_max: std::time::Duration::from_secs(1),
        }
    }

    fn window() -> Window {
        Window::parse(
            Some("2024-05-01"),
            Some("2024-05-08"),
            jiff::Timestamp::now(),
        )
        .unwrap()
    }

    /// `?` placeholders: the question marks outside string literals.
    fn placeholders(sql: &str) -> usize {
        let mut in_string = false;
        sql.chars()
            .filter(|c| {
                if *c == '\'' {
                    in_string = !in_string;
                }
                !in_string && *c == '?'
            })
            .count()
    }

    #[test]
    fn every_configured_value_is_a_parameter() {
        let scope = Scope {
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into()],
            instances: vec!["11111111-2222-3333-4444-555555555555".into()],
        };
        let events = EventSelection::parse(&["UpdateUserHierarchy", "CreateUser"]).unwrap();
        let q = audit_query(&athena(), window(), &events, &scope);
        assert_eq!(placeholders(&q.sql), q.parameters.len(), "{}", q.sql);
        for value in [
            "'2024/04/30'",
            "'2024/05/09'",
            "'2024-05-01T00:00:00Z'",
            "'2024-05-08T00:00:00Z'",
            "'111122223333'",
            "'us-east-1'",
            "'11111111-2222-3333-4444-555555555555'",
        ] {
            assert!(q.parameters.iter().any(|p| p == value), "{value}");
            assert!(!q.sql.contains(value), "{value} is spliced into the SQL");
        }
        // Event names are constants of the rules (CASE arms); the selection is parameters.
        let selection = q.sql.split("audited AS").nth(1).unwrap();
        let selection = &selection[..selection.find("),").unwrap()];
        assert!(selection.contains("event_name IN (?, ?)"), "{selection}");
        assert!(!q.sql.contains("substring("));
        assert!(q.sql.contains("\"date\" BETWEEN ? AND ?"));
        assert!(q.sql.contains("\"account\" IN (?)"));
        assert!(q.sql.contains("\"region\" IN (?)"));
    }

    #[test]
    fn list_calls_get_a_row_per_target_and_ids_are_decoded() {
        let q = audit_query(
            &athena(),
            window(),
            &EventSelection::defaults(),
            &Scope::default(),
        );
        assert!(
            q.sql.contains("CROSS JOIN (VALUES (0), (1), (2)"),
            "{}",
            q.sql
        );
        assert!(q.sql.contains("(24)) AS n(target_index)"));
        assert!(!q.sql.contains("(25)"));
        assert!(q.sql.contains(
            "WHEN 'AssociateWorkspace' THEN json_size(requestparameters, '$.ResourceArns')"
        ));
        assert!(
            q.sql.contains(
                "WHEN 24 THEN json_extract_scalar(requestparameters, '$.ResourceArns[24]')"
            )
        );
        assert!(
            q.sql
                .contains("PARTITION BY event_id, target_index ORDER BY")
        );
        assert!(
            q.sql
                .ends_with("ORDER BY NOT ready, trail_file, ts, event_id, target_index")
        );
        // InstanceId, every target reference and every learned id go through the decoding.
        assert_eq!(q.sql.matches("url_decode(").count(), 3 * 2, "{}", q.sql);
        for key in SECRET_KEYS {
            assert!(
                q.sql.contains(&key.to_ascii_lowercase()),
                "{key} is not masked"
            );
        }
    }

    #[test]
    fn literals_double_their_quotes_and_the_view_has_no_placeholders() {
        assert_eq!(literal("it's"), "'it''s'");
        let view = create_view(&athena());
        assert!(
            view.starts_with("CREATE OR REPLACE VIEW \"connect_audit\".\"connect_user_audit\"")
        );
        assert_eq!(placeholders(&view), 0);
        let mut no_snapshot = athena();
        no_snapshot.snapshot = None;
        assert!(!view_select(&no_snapshot).contains("connect_users"));
        assert!(view.contains("\"connect_audit\".\"connect_users\""));
    }
}
