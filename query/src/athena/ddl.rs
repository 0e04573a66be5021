//! The Athena tables: CloudTrail with partition projection over account, region and delivery
//! date, and the snapshot store's four folders as JSON tables.
//!
//! DDL cannot take parameters, so everything written into it comes from
//! [`ValidAthena`], whose names, locations, accounts and regions were checked against strict
//! patterns (no quote, backslash or `$` can reach a string literal here).

use super::settings::ValidAthena;

/// The view analysts query: one row per audited event, the audit record's columns.
pub const VIEW: &str = "connect_user_audit";

/// The snapshot tables: name, store folder, and the name column (`username` or `name`).
pub const SNAPSHOT_TABLES: [(&str, &str, &str); 4] = [
    ("connect_users", "users", "username"),
    ("connect_security_profiles", "security-profiles", "name"),
    ("connect_routing_profiles", "routing-profiles", "name"),
    ("connect_hierarchy_groups", "hierarchy-groups", "name"),
];

/// The table over the snapshot store's `history/` folder: every version a snapshot run
/// observed, one row a line (`folder`, `observedat`, and `object`, the object as JSON text).
/// Case-sensitive, with the three columns mapped to their keys: the object's own keys
/// (`SecurityProfileIds`, tag keys) must reach the report as written, not lower-cased.
pub const HISTORY_TABLE: &str = "connect_history";

/// The CloudTrail columns, as in AWS's CloudTrail table DDL, lower-cased (Athena lower-cases
/// names; DataFusion and other engines compare quoted names exactly).
const CLOUDTRAIL_COLUMNS: &[(&str, &str)] = &[
    ("eventversion", "string"),
    (
        "useridentity",
        "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,\
         accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<\
         mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,\
         principalid:string,arn:string,accountid:string,username:string>,ec2roledelivery:string,\
         webidfederationdata:map<string,string>>>",
    ),
    ("eventtime", "string"),
    ("eventsource", "string"),
    ("eventname", "string"),
    ("awsregion", "string"),
    ("sourceipaddress", "string"),
    ("useragent", "string"),
    ("errorcode", "string"),
    ("errormessage", "string"),
    ("requestparameters", "string"),
    ("responseelements", "string"),
    ("additionaleventdata", "string"),
    ("requestid", "string"),
    ("eventid", "string"),
    ("readonly", "string"),
    (
        "resources",
        "array<struct<arn:string,accountid:string,type:string>>",
    ),
    ("eventtype", "string"),
    ("apiversion", "string"),
    ("recipientaccountid", "string"),
    ("serviceeventdetails", "string"),
    ("sharedeventid", "string"),
    ("vpcendpointid", "string"),
    (
        "tlsdetails",
        "struct<tlsversion:string,ciphersuite:string,clientprovidedhostheader:string>",
    ),
];

/// The partition columns of the CloudTrail table, projected (never crawled).
pub const PARTITIONS: [&str; 3] = ["account", "region", "date"];

/// One DDL statement and what it does, for progress messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What it creates, e.g. `table connect_audit.cloudtrail`.
    pub what: String,
    /// The SQL.
    pub sql: String,
}

/// `CREATE DATABASE IF NOT EXISTS`.
pub fn create_database(athena: &ValidAthena) -> Statement {
    Statement {
        what: format!("database {}", athena.database),
        sql: format!(
            "CREATE DATABASE IF NOT EXISTS `{}`\nCOMMENT 'connect-audit: who changed which Amazon Connect user, and when'",
            athena.database
        ),
    }
}

/// `DROP TABLE IF EXISTS` of every table `init` creates (for `athena init --replace`: the
/// tables are external, so their data stays where it is).
pub fn drop_tables(athena: &ValidAthena) -> Vec<Statement> {
    let mut names = vec![athena.table.as_str()];
    if athena.snapshot.is_some() {
        names.extend(SNAPSHOT_TABLES.iter().map(|(t, _, _)| *t));
        names.push(HISTORY_TABLE);
    }
    if athena.lake.is_some() {
        names.push(LAKE_TABLE);
    }
    names
        .into_iter()
        .map(|t| Statement {
            what: format!("drop table {}.{t}", athena.database),
            sql: format!("DROP TABLE IF EXISTS `{}`.`{t}`", athena.database),
        })
        .collect()
}

/// The CloudTrail table over `AWSLogs/[o-…/]<account>/CloudTrail/<region>/<yyyy/MM/dd>/`,
/// with partition projection: no crawler, no `MSCK REPAIR`, and a query reads only the
/// accounts, regions and dates its predicates name.
pub fn create_cloudtrail_table(athena: &ValidAthena) -> Statement {
    let columns = CLOUDTRAIL_COLUMNS
        .iter()
        .map(|(name, ty)| format!("  `{name}` {ty}"))
        .collect::<Vec<_>>()
        .join(",\n");
    let base = athena.aws_logs.url("");
    let template = match &athena.organization_id {
        Some(org) => format!("{base}{org}/${{account}}/CloudTrail/${{region}}/${{date}}"),
        None => format!("{base}${{account}}/CloudTrail/${{region}}/${{date}}"),
    };
    let sql = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{table}` (\n{columns}\n)\n\
         PARTITIONED BY (`account` string, `region` string, `date` string)\n\
         ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n\
         STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'\n\
         OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n\
         LOCATION '{base}'\n\
         TBLPROPERTIES (\n  \
         'projection.enabled'='true',\n  \
         'projection.account.type'='enum',\n  \
         'projection.account.values'='{accounts}',\n  \
         'projection.region.type'='enum',\n  \
         'projection.region.values'='{regions}',\n  \
         {date},\n  \
         'storage.location.template'='{template}'\n)",
        db = athena.database,
        table = athena.table,
        accounts = athena.accounts.join(","),
        regions = athena.regions.join(","),
        date = date_projection(athena, "yyyy/MM/dd"),
    );
    Statement {
        what: format!("table {}.{}", athena.database, athena.table),
        sql,
    }
}

/// The snapshot store's tables (none without an S3 snapshot store). `connect_users` has the
/// classic recipe's `Arn, Id, Username` and the fields the snapshot adds; the profile and group
/// tables `Arn, Id, Name, InstanceId`. The openx JsonSerDe matches keys case-insensitively and
/// fails a query on a malformed object rather than skipping it.
pub fn create_snapshot_tables(athena: &ValidAthena) -> Vec<Statement> {
    let Some(snapshot) = &athena.snapshot else {
        return Vec::new();
    };
    let history = Statement {
        what: format!("table {}.{HISTORY_TABLE}", athena.database),
        sql: format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{HISTORY_TABLE}` (\n  \
             `folder` string,\n  `observedat` string,\n  `object` string\n)\n\
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
             WITH SERDEPROPERTIES ('ignore.malformed.json'='false', 'case.insensitive'='false', \
             'mapping.folder'='Folder', 'mapping.observedat'='ObservedAt', 'mapping.object'='Object')\n\
             LOCATION '{location}'",
            db = athena.database,
            location = snapshot.url("history/"),
        ),
    };
    SNAPSHOT_TABLES
        .iter()
        .map(|(table, folder, name)| {
            let columns: &[&str] = if *name == "username" {
                &[
                    "`arn` string",
                    "`id` string",
                    "`username` string",
                    "`instanceid` string",
                    "`lastmodifiedtime` string",
                    "`email` string",
                    "`firstseen` string",
                    "`lastseen` string",
                    "`deleted` boolean",
                    "`deletedat` string",
                ]
            } else {
                &[
                    "`arn` string",
                    "`id` string",
                    "`name` string",
                    "`instanceid` string",
                ]
            };
            Statement {
                what: format!("table {}.{table}", athena.database),
                sql: format!(
                    "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{table}` (\n  {cols}\n)\n\
                     ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
                     WITH SERDEPROPERTIES ('ignore.malformed.json'='false', 'case.insensitive'='true')\n\
                     LOCATION '{location}'",
                    db = athena.database,
                    cols = columns.join(",\n  "),
                    location = snapshot.url(&format!("{folder}/")),
                ),
            }
        })
        .chain(std::iter::once(history))
        .collect()
}

/// The `date` partition's projection properties, one a line, for dates written as `format`
/// (Java date pattern) from `projection_start` to today.
fn date_projection(athena: &ValidAthena, format: &str) -> String {
    let start = athena
        .projection_start
        .strftime(
            &format
                .replace("yyyy", "%Y")
                .replace("MM", "%m")
                .replace("dd", "%d"),
        )
        .to_string();
    [
        "'projection.date.type'='date'".to_owned(),
        format!("'projection.date.format'='{format}'"),
        format!("'projection.date.range'='{start},NOW'"),
        "'projection.date.interval'='1'".to_owned(),
        "'projection.date.interval.unit'='DAYS'".to_owned(),
    ]
    .join(",\n  ")
}

/// The table over the Parquet data lake the `parquet` exporter writes (`partition_by_date`).
pub const LAKE_TABLE: &str = "connect_audit_records";

/// The table over the data lake (`<lake>/date=YYYY-MM-DD/*.parquet`), the audit record's
/// columns with `date` projected; none without a lake on S3.
pub fn create_lake_table(athena: &ValidAthena) -> Option<Statement> {
    let lake = athena.lake.as_ref()?;
    let columns = connect_audit_core::record::COLUMNS
        .iter()
        .map(|name| {
            let ty = match *name {
                "event_time" => "timestamp",
                "target_index" => "int",
                "findings" => "array<string>",
                _ => "string",
            };
            format!("  `{name}` {ty}")
        })
        .collect::<Vec<_>>()
        .join(",\n");
    let root = lake.url("");
    let sql = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{db}`.`{LAKE_TABLE}` (\n{columns}\n)\n\
         PARTITIONED BY (`date` string)\n\
         STORED AS PARQUET\n\
         LOCATION '{root}'\n\
         TBLPROPERTIES (\n  \
         'projection.enabled'='true',\n  \
         {date},\n  \
         'storage.location.template'='{root}date=${{date}}/'\n)",
        db = athena.database,
        date = date_projection(athena, "yyyy-MM-dd"),
    );
    Some(Statement {
        what: format!("table {}.{LAKE_TABLE}", athena.database),
        sql,
    })
}

/// Every statement of `athena init`, in order: database, (drops with `replace`), tables, and
/// the view with `view`.
pub fn init_statements(athena: &ValidAthena, replace: bool, view: bool) -> Vec<Statement> {
    let mut statements = vec![create_database(athena)];
    if replace {
        statements.extend(drop_tables(athena));
    }
    statements.push(create_cloudtrail_table(athena));
    statements.extend(create_snapshot_tables(athena));
    statements.extend(create_lake_table(athena));
    if view {
        statements.push(Statement {
            what: format!("view {}.{VIEW}", athena.database),
            sql: super::sql::create_view(athena),
        });
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::athena::settings::S3Path;

    fn athena() -> ValidAthena {
        let mut a = crate::athena::sql::tests::athena();
        a.aws_logs = S3Path {
            bucket: "trail".into(),
            prefix: "logs/AWSLogs".into(),
        };
        a.organization_id = Some("o-a1b2c3d4e5".into());
        a.accounts.push("444455556666".into());
        a.snapshot = Some(S3Path {
            bucket: "snap".into(),
            prefix: "store".into(),
        });
        a
    }

    #[test]
    fn the_lake_table_reads_the_parquet_partitions() {
        let mut a = athena();
        assert!(create_lake_table(&a).is_none());
        a.lake = Some(S3Path {
            bucket: "lake".into(),
            prefix: "connect_audit".into(),
        });
        let t = create_lake_table(&a).unwrap().sql;
        assert!(
            t.contains("`event_time` timestamp,\n  `event_id` string"),
            "{t}"
        );
        assert!(
            t.contains("STORED AS PARQUET\nLOCATION 's3://lake/connect_audit/'"),
            "{t}"
        );
        assert!(
            t.contains("'storage.location.template'='s3://lake/connect_audit/date=${date}/'"),
            "{t}"
        );
        assert!(t.contains("'projection.date.format'='yyyy-MM-dd'"), "{t}");
        let all = init_statements(&a, true, false);
        assert!(all.iter().any(|s| {
            s.sql
                .contains("DROP TABLE IF EXISTS `connect_audit`.`connect_audit_records`")
        }));
        assert!(all.last().unwrap().sql.starts_with(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`connect_audit_records`"
        ));
    }

    #[test]
    fn organization_template_and_projection() {
        let t = create_cloudtrail_table(&athena()).sql;
        assert!(t.contains(
            "'storage.location.template'='s3://trail/logs/AWSLogs/o-a1b2c3d4e5/${account}/CloudTrail/${region}/${date}'"
        ), "{t}");
        assert!(t.contains("'projection.account.values'='111122223333,444455556666'"));
        assert!(t.contains("'projection.date.range'='2020/01/01,NOW'"));
        assert!(t.contains("LOCATION 's3://trail/logs/AWSLogs/'"));
        let users = &create_snapshot_tables(&athena())[0].sql;
        assert!(
            users.contains("LOCATION 's3://snap/store/users/'"),
            "{users}"
        );
        let history = &create_snapshot_tables(&athena())[4].sql;
        assert!(
            history.contains("`connect_history`")
                && history.contains("`object` string")
                && history.contains("'case.insensitive'='false'")
                && history.contains("'mapping.object'='Object'")
                && history.contains("LOCATION 's3://snap/store/history/'"),
            "{history}"
        );
        // The database, then per table (trail, four snapshot folders, history) a drop and a
        // create, then the view.
        let all = init_statements(&athena(), true, true);
        assert_eq!(all.len(), 1 + 6 + 6 + 1);
        assert!(all[1].sql.starts_with("DROP TABLE IF EXISTS"));
    }
}
