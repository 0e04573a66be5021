//! What the fake Athena's unit tests share: the product's DDL, a runtime, and SQL run on a
//! bare engine.

use super::Outcome;
use super::engine::Engine;

pub(super) const CLOUDTRAIL_DDL: &str = r"CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`cloudtrail` (
  `eventversion` string,
  `useridentity` struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,accesskeyid:string,username:string,sessioncontext:struct<attributes:struct<mfaauthenticated:string,creationdate:string>,sessionissuer:struct<type:string,principalid:string,arn:string,accountid:string,username:string>,ec2roledelivery:string,webidfederationdata:map<string,string>>>,
  `eventtime` string,
  `eventsource` string,
  `eventname` string,
  `awsregion` string,
  `sourceipaddress` string,
  `useragent` string,
  `errorcode` string,
  `errormessage` string,
  `requestparameters` string,
  `responseelements` string,
  `additionaleventdata` string,
  `requestid` string,
  `eventid` string,
  `readonly` string,
  `resources` array<struct<arn:string,accountid:string,type:string>>,
  `eventtype` string,
  `apiversion` string,
  `recipientaccountid` string,
  `serviceeventdetails` string,
  `sharedeventid` string,
  `vpcendpointid` string,
  `tlsdetails` struct<tlsversion:string,ciphersuite:string,clientprovidedhostheader:string>
)
PARTITIONED BY (`account` string, `region` string, `date` string)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://trail-bucket/logs/AWSLogs/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.account.type'='enum',
  'projection.account.values'='111122223333,444455556666',
  'projection.region.type'='enum',
  'projection.region.values'='ap-northeast-1,us-east-1',
  'projection.date.type'='date',
  'projection.date.format'='yyyy/MM/dd',
  'projection.date.range'='2020/01/01,NOW',
  'projection.date.interval'='1',
  'projection.date.interval.unit'='DAYS',
  'storage.location.template'='s3://trail-bucket/logs/AWSLogs/${account}/CloudTrail/${region}/${date}'
)";

pub(super) const USERS_DDL: &str = r"CREATE EXTERNAL TABLE IF NOT EXISTS `connect_audit`.`connect_users` (
  `arn` string, `id` string, `username` string, `instanceid` string, `lastmodifiedtime` string,
  `email` string, `firstseen` string, `lastseen` string, `deleted` boolean, `deletedat` string
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
LOCATION 's3://snap-bucket/snapshot/users/'";

pub(super) type Rows = Vec<Vec<Option<String>>>;

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

#[allow(
    clippy::unnecessary_wraps,
    reason = "reads as the Option cells it builds"
)]
pub(super) fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Runs `sql` on a bare engine and returns its rows (header included) or failure reason.
pub(super) fn engine_sql(sql: &str, parameters: &[&str]) -> Result<Rows, String> {
    let engine = Engine::new();
    let parameters: Vec<String> = parameters.iter().map(|p| (*p).to_owned()).collect();
    match runtime().block_on(engine.execute(sql, &parameters, None)) {
        Outcome::Succeeded { result, .. } => Ok(result.rows.clone()),
        Outcome::Failed { reason, .. } => Err(reason),
        Outcome::Hanging => unreachable!(),
    }
}

pub(super) fn value(sql: &str) -> Option<String> {
    let rows = engine_sql(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows[1][0].clone()
}
