//! The deterministic generator of the repository's `examples/`: a small CloudTrail trail (two
//! accounts, one of them in an organization trail, plus a digest file and plenty of other
//! services' noise) and the snapshot store of the two Connect instances it talks about.
//!
//! The generator is seeded and writes byte-identical files on every run: gzip members carry
//! mtime 0 and no file name, JSON keys are written in a fixed order by a tiny writer of our own
//! (never through a map whose order a cargo feature could change), and every file list is
//! sorted. `cargo run -p connect-audit-tests --bin make-examples` rewrites `examples/`; the
//! `e2e` test `examples::examples_are_not_stale` fails when the committed files drift from
//! what this module writes.
//!
//! The ids of everything the trail mentions are public constants ([`ids`], [`events`]) so
//! tests can say which event must yield which row.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use crate::json::J;

/// Ids of the accounts, instances, users, profiles and groups of the examples.
///
/// Every Connect id is UUID-shaped (lowercase hex 8-4-4-4-12), as the snapshot store requires.
pub mod ids {
    /// The account of the Tokyo instance; its trail is a plain (non-organization) trail.
    pub const ACCOUNT_TOKYO: &str = "111122223333";
    /// The region of the Tokyo instance.
    pub const REGION_TOKYO: &str = "ap-northeast-1";
    /// The organization whose trail holds the Virginia account.
    pub const ORGANIZATION: &str = "o-a1b2c3d4e5";
    /// The account of the Virginia instance, logged by the organization trail.
    pub const ACCOUNT_VIRGINIA: &str = "444455556666";
    /// The region of the Virginia instance.
    pub const REGION_VIRGINIA: &str = "us-east-1";

    /// The Connect instance in Tokyo.
    pub const INSTANCE_TOKYO: &str = "6762b34f-4e26-4a8e-a032-35a1e58e1b1c";
    /// The Connect instance in Virginia (a Global Resiliency replica).
    pub const INSTANCE_VIRGINIA: &str = "6861072c-1e75-4a93-8661-abe05b1b90b4";

    /// `alice.admin`: the Tokyo admin who does most of the admin-website changes.
    pub const ALICE: &str = "8698e95f-b8d0-48ea-97da-1b729ffe1d99";
    /// `bob.supervisor`: a Tokyo admin whose role session name is `<id>@<email>` cut to 64
    /// characters.
    pub const BOB: &str = "caceb86f-95b6-46c5-b4ba-5acef0867ff7";
    /// Bob's email, as it (partly) appears in his session name.
    pub const BOB_EMAIL: &str = "bob.supervisor@example-callcenter.co.jp";
    /// `kenji.tanaka`, a Tokyo agent.
    pub const KENJI: &str = "7a0071a9-3b4e-4972-8c21-aecb511609d7";
    /// `yuki.sato`, a Tokyo agent.
    pub const YUKI: &str = "d264cddd-432a-4933-9f85-43633822dce7";
    /// `haruto.suzuki`, a Tokyo agent.
    pub const HARUTO: &str = "7b994e16-150e-4651-b8d9-6afd054b7eef";
    /// `mei.takahashi`, a Tokyo agent.
    pub const MEI: &str = "0fcb44b3-fcba-4843-9238-0b6a8c10562b";
    /// `sora.ito`, a Tokyo agent.
    pub const SORA: &str = "5004857e-61f3-45b5-8337-f2143e4f1740";
    /// `riko.yamamoto`, a Tokyo agent.
    pub const RIKO: &str = "5679b215-bdf4-4b40-826b-3d8cc6487799";
    /// `daiki.kobayashi`, a Tokyo agent.
    pub const DAIKI: &str = "6409a0be-3336-439f-b5e5-e9a10f422b96";
    /// A Tokyo user created and deleted between two snapshots: named only by the trail.
    pub const TRAIL_USER: &str = "f2f5f933-1da2-4c2d-922c-55f70f49279a";
    /// The username [`TRAIL_USER`] was created with.
    pub const TRAIL_USER_NAME: &str = "temp.contractor01";
    /// An admin-website user of Tokyo that no snapshot ever saw: its changes stay unresolved.
    pub const UNKNOWN_ADMIN: &str = "77d5ebfa-2d70-47eb-ba95-89e6bc182f77";

    /// `carol.admin`, the Virginia admin.
    pub const CAROL: &str = "c3eba5d5-babe-4ec5-b089-24e99e0691b3";
    /// `maria.garcia`, a Virginia agent.
    pub const MARIA: &str = "f76ff762-aff6-44d2-8ca1-5772111b8802";
    /// `li.wei`, a Virginia agent deleted by Global Resiliency sync (kept, `Deleted: true`).
    pub const LI_WEI: &str = "93bce856-ca08-43dd-804f-d65ce1181284";
    /// `james.smith`, a Virginia agent.
    pub const JAMES: &str = "7ef992a8-3e47-4134-8a4b-cd42101034a8";

    /// Security profile `Admin` (Tokyo).
    pub const SP_ADMIN: &str = "c83c5d24-2526-4511-ba7c-6010b9ae8a03";
    /// Security profile `Agent` (Tokyo).
    pub const SP_AGENT: &str = "d6a7b6c8-a2d2-466d-a760-ed2a37ffff52";
    /// Security profile `CallCenterManager` (Tokyo).
    pub const SP_MANAGER: &str = "5ac6ef52-70fb-42e8-98ea-eebd745da064";
    /// Security profile `QualityAnalyst` (Tokyo), created in the window.
    pub const SP_QA: &str = "2a79e68e-9142-4874-b3ae-1a625db1e199";
    /// Security profile `Agent` (Virginia).
    pub const SP_VA_AGENT: &str = "c8426514-595e-4078-8edc-a0f3a6427061";

    /// Routing profile `Basic Routing Profile` (Tokyo).
    pub const RP_BASIC: &str = "11bbc7aa-88c2-4af3-b3b9-196352ee06fd";
    /// Routing profile `Tier 1 Support` (Tokyo).
    pub const RP_SUPPORT: &str = "84268cc8-f863-4145-9ad2-e05adb32f148";
    /// Routing profile `Outbound Sales` (Tokyo).
    pub const RP_SALES: &str = "3f406ac5-0f94-4e6d-a9d3-4bcd79a24020";
    /// Routing profile `US Support` (Virginia).
    pub const RP_VA_SUPPORT: &str = "3bb51aed-1c29-4abd-bb70-d9dd38f7053d";

    /// Hierarchy group `Japan` (Tokyo).
    pub const HG_JAPAN: &str = "74e597a5-c503-44f2-9fdc-80c8099f6569";
    /// Hierarchy group `Tokyo` (Tokyo).
    pub const HG_TOKYO: &str = "ed167aa8-0159-455c-a920-bd1829087675";
    /// Hierarchy group `Tokyo Floor 2` (Tokyo), renamed in the window.
    pub const HG_TOKYO_FLOOR2: &str = "78149a02-fe86-4910-ba39-b4d7f781a349";
    /// Hierarchy group `Osaka Team` (Tokyo), created after the last snapshot: named by the
    /// trail.
    pub const HG_OSAKA: &str = "3e108dd1-d542-4a1f-b33b-82db7842ae8c";
    /// Hierarchy group `Virginia Support` (Virginia).
    pub const HG_VA: &str = "7f780056-b2cd-410d-b1ad-edbc5c915e93";

    /// A queue of the Tokyo instance (tagged, so a `resource` target).
    pub const QUEUE_BILLING: &str = "d5f66883-a4a3-41fd-affd-0cecc14c05c8";
    /// An agent status of the Tokyo instance (`Break`).
    pub const AGENT_STATUS_BREAK: &str = "715662cd-87f9-4290-a8ed-7ada559ebda1";
    /// A workspace of the Tokyo instance (assigned to users and a routing profile).
    pub const WORKSPACE: &str = "f5111754-7ba5-4c83-b1d7-9b93cca93bf2";
    /// A traffic distribution group (Global Resiliency) of the Tokyo instance.
    pub const TRAFFIC_GROUP: &str = "9d682749-35bc-48c7-885a-405b9bce0338";
    /// The access token a `GetFederationToken` response carries: no output may hold it.
    pub const FEDERATION_ACCESS_TOKEN: &str = "EXAMPLEACCESSTOKENeyJhbGciOiJIUzI1NiJ9";
    /// The refresh token of the same response.
    pub const FEDERATION_REFRESH_TOKEN: &str = "EXAMPLEREFRESHTOKENeyJhbGciOiJIUzI1NiJ9";
    /// The token in the sign-in URL of the same response.
    pub const FEDERATION_URL_TOKEN: &str = "EXAMPLEURLTOKEN0123456789";
    /// The code a `CreateAuthCode` response carries: no output may hold it.
    pub const AUTH_CODE: &str = "EXAMPLEAUTHCODE5f2c9e1a7b3d";

    /// `text` as an SDK or CloudFormation records a URI path parameter: `:` and `/`
    /// percent-encoded.
    pub fn percent_encoded(text: &str) -> String {
        text.replace(':', "%3A").replace('/', "%2F")
    }

    /// The ARN of a Connect instance.
    pub fn instance_arn(region: &str, account: &str, instance: &str) -> String {
        format!("arn:aws:connect:{region}:{account}:instance/{instance}")
    }

    /// The ARN of a Connect user (`…/agent/<id>`).
    pub fn agent_arn(region: &str, account: &str, instance: &str, user: &str) -> String {
        format!("{}/agent/{user}", instance_arn(region, account, instance))
    }
}

/// `eventID`s of the notable events in the example trail, and what each demonstrates.
pub mod events {
    /// `UpdateUserPhoneConfig` at 2024-04-30T23:59:59Z, delivered in a 05/01 file: one second
    /// before a `since` of 2024-05-01, so never reported.
    pub const BEFORE_WINDOW: &str = "b8468eb9-a104-48c7-b32b-aabe2974051b";
    /// `CreateSecurityProfile` from the admin website: target `security_profile`, id from the
    /// response.
    pub const CREATE_SECURITY_PROFILE: &str = "b37640ca-d26b-40f2-94aa-a6d16290b6f9";
    /// `UpdateSecurityProfile`: target `security_profile` named from the snapshot.
    pub const UPDATE_SECURITY_PROFILE: &str = "91fdfd21-2cda-4208-8717-a2c9a47b1acc";
    /// `UpdateUserSecurityProfiles` by an IAM Identity Center session (aws-cli): actor `iam`
    /// named `admin@example.com`, origin `api`.
    pub const SSO_USER_SECURITY_PROFILES: &str = "a33d32fb-46f0-4ce9-8a52-ce5ee60db9ec";
    /// `UpdateUserRoutingProfile` with `InstanceId` and `UserId` given as ARNs.
    pub const ROUTING_PROFILE_ARN_IDS: &str = "3fa138cd-a9d7-4e88-82ea-0fd64118783a";
    /// `UpdateUserHierarchy` by an IAM user (`ops-automation`, Boto3).
    pub const IAM_USER_HIERARCHY: &str = "a913e85c-bae0-4530-89f1-2f8becad0899";
    /// A failed `UpdateUserSecurityProfiles` (`AccessDeniedException`): kept, with its error.
    pub const ACCESS_DENIED: &str = "d6d609b6-bb3a-4c20-84e2-4cfc94840610";
    /// `UpdateUserIdentityInfo` by Bob, whose session name is `<uuid>@<email>` cut to 64
    /// characters.
    pub const LONG_SESSION_IDENTITY_INFO: &str = "2f6181e3-c92b-4b25-8bb7-c586af90d432";
    /// `CreateUser` of [`crate::ids::TRAIL_USER`] (password masked in the request): names
    /// itself from `Username`.
    pub const CREATE_TRAIL_USER: &str = "a738f0ac-6224-44bd-8ddf-6a9bee71ef23";
    /// `UpdateUserSecurityProfiles` on the trail-only user: named from the earlier `CreateUser`.
    pub const TRAIL_USER_SECURITY_PROFILES: &str = "4f3fb37f-be1a-4f5b-ae7f-b0b76244843f";
    /// `TagResource` on the trail-only user's `/agent/` ARN: target `user`.
    pub const TAG_AGENT: &str = "c97b9256-2798-48e0-b13a-ac81b9a2f1f2";
    /// IAM's own `CreateUser` (`iam.amazonaws.com`): a different API, never audited.
    pub const IAM_CREATE_USER: &str = "e54b97fa-a680-436e-9754-69075d1e859f";
    /// `DeleteUser` of the trail-only user by Bob: still named from the trail.
    pub const DELETE_TRAIL_USER: &str = "2e45f6fe-7624-4e17-a9cc-a4dbc47d1117";
    /// `UpdateUserRoutingProfile` delivered twice, in two consecutive files: reported once.
    pub const DUPLICATE: &str = "0e2399e1-072b-49e2-ad7b-a19905ebc6a4";
    /// `TagResource` on a `/queue/` ARN: target `resource`, id the whole ARN.
    pub const TAG_QUEUE: &str = "fc09e5dd-9897-4d22-aaf8-c585eff7d5dd";
    /// `UpdateUserHierarchyStructure`: instance-wide, target `none`.
    pub const HIERARCHY_STRUCTURE: &str = "94de626c-f384-4092-87fe-4b5f56f534cf";
    /// `UpdateUserHierarchyGroupName`: target `hierarchy_group`.
    pub const RENAME_HIERARCHY_GROUP: &str = "cc8488ec-1423-4c49-b78e-1cf261e86f7d";
    /// `UpdateRoutingProfileQueues`: target `routing_profile`.
    pub const ROUTING_PROFILE_QUEUES: &str = "5dec3c08-13e5-4272-9318-c21d550ab5f3";
    /// `UpdateUserPhoneConfig` by an admin-website user absent from the snapshot:
    /// `name_source = unresolved`.
    pub const UNKNOWN_ADMIN: &str = "071df4db-4f59-4bfd-be53-0b74f0d9560d";
    /// `PutUserStatus`: opt-in (`agent_status`), absent from the default selection.
    pub const PUT_USER_STATUS: &str = "e8dca474-50fb-453c-87a1-8e7c7de94326";
    /// A plain `UpdateUserPhoneConfig` from the admin website.
    pub const PHONE_CONFIG: &str = "6ea90aad-b092-49c5-b286-bc51a191f3bf";
    /// `CreateUserHierarchyGroup` after the last snapshot: named from request `Name` and
    /// response `HierarchyGroupId`.
    pub const CREATE_HIERARCHY_GROUP: &str = "9ea23fc5-7108-457a-8442-8f09620e8232";
    /// `UpdateUserHierarchy` at 2024-05-07T23:58:00Z, delivered in a file dated 2024/05/08.
    pub const LATE_DELIVERY: &str = "6b40e24d-f5bd-453f-baf2-1d11c79aff1c";
    /// `UpdateUserRoutingProfile` at exactly 2024-05-08T00:00:00Z: excluded by an `until` of
    /// 2024-05-08.
    pub const AT_UNTIL: &str = "67d632b3-c5a3-4272-a5c3-234cd48511bc";
    /// `DescribeUser` (a read, opt-in `sign_in` group): absent by default.
    pub const DESCRIBE_USER: &str = "e45ccb72-f1a8-4a2a-a7f7-03da4bed0148";
    /// `UpdateUserSecurityProfiles` in the organization trail's account (Virginia).
    pub const ORG_CONSOLE: &str = "00c1799e-33ae-4a2f-8657-8fce47527c0d";
    /// `UpdateUserHierarchy` in the organization trail's account (Virginia).
    pub const ORG_HIERARCHY: &str = "a4d1f156-105b-4df3-96ae-5760301db6e5";
    /// `DeleteUser` by the Global Resiliency synchronization role, ids as ARNs (like the
    /// runbook sample): actor `service`.
    pub const SYNC_DELETE: &str = "143e0b0f-6d99-42ed-a5c5-6f797f041761";
    /// `UpdateUserHierarchy` made through CloudFormation: `InstanceId` is a percent-encoded
    /// instance ARN (`arn%3Aaws%3Aconnect%3A…`), read as the bare instance id.
    pub const ENCODED_INSTANCE: &str = "4be94d7e-d95c-40f8-a903-14239c35b482";
    /// `UpdateUserRoutingProfile` through CloudFormation: `UserId` and `InstanceId` are
    /// percent-encoded ARNs; the user is named from the snapshot.
    pub const ENCODED_USER_ARN: &str = "051ba5fc-6907-4067-95f7-f1cb0884d031";
    /// `TagResource` through CloudFormation on a percent-encoded `/agent/` ARN: target `user`.
    pub const ENCODED_TAG_AGENT: &str = "9a047597-a5cf-452a-be34-f187d3590e1d";
    /// `AssociateSecurityProfiles` whose `EntityArn` is a percent-encoded `/agent/` ARN.
    pub const ENCODED_ENTITY_ARN: &str = "15b96fe6-abe1-41ff-81df-2052b6464a8e";
    /// `AssociateWorkspace` naming four users and a routing profile in `ResourceArns`: five
    /// rows, `target_index` 0 to 4, each target named.
    pub const ASSOCIATE_WORKSPACE: &str = "bd657e8e-1e5e-49e8-9446-da5da1fcd9f7";
    /// `DisassociateWorkspace` of one user.
    pub const DISASSOCIATE_WORKSPACE: &str = "5c489e77-f389-46c6-8be2-73b3ba005dfe";
    /// `UpdateWorkspaceVisibility`: target the workspace (`resource`).
    pub const WORKSPACE_VISIBILITY: &str = "b79c9a43-a76a-4d9e-ab76-929aec7f627d";
    /// `CreateTrafficDistributionGroup`: target the new group, id from the response.
    pub const CREATE_TRAFFIC_GROUP: &str = "d804c9d2-ef85-4402-89d1-76837eb49948";
    /// `UpdateTrafficDistribution` of that group (sign-in and agent distribution).
    pub const UPDATE_TRAFFIC: &str = "2965ceb4-539f-4ef1-a8da-148fd3706537";
    /// `DeleteTrafficDistributionGroup`.
    pub const DELETE_TRAFFIC_GROUP: &str = "34164ede-af5a-4c63-b241-978e6db9eb87";
    /// `DisassociateApprovedOrigin` (opt-in `instance` group).
    pub const DISASSOCIATE_ORIGIN: &str = "1bd0f86d-1f20-4ccc-804c-d0db1e5666e2";
    /// `DisassociateSecurityKey` (opt-in `instance` group).
    pub const DISASSOCIATE_KEY: &str = "748f46f0-d0f5-4d14-a06f-9ddded9a9156";
    /// `GetFederationToken` (opt-in `sign_in`): its response names the user signed in as
    /// (the target) and carries credentials and a sign-in URL that no output may show.
    pub const FEDERATION_TOKEN: &str = "ad472324-748c-494c-a870-59da21c80b6d";
    /// `DeleteWorkspace`, which removes every assignment of the workspace: target the
    /// workspace (`resource`).
    pub const DELETE_WORKSPACE: &str = "b547f086-1914-4eaf-8fb6-1b5eec9a8c05";
    /// `UpdateCrossRegionRouting` (opt-in `instance`): no target.
    pub const CROSS_REGION_ROUTING: &str = "33ff12a5-d2cf-41e1-9ca7-9492ebdc1390";
    /// `CreateAuthCode` (opt-in `sign_in`): its response's `AuthCode` is in no output.
    pub const CREATE_AUTH_CODE: &str = "aed0eef6-cecd-45b4-a1d4-43607ff933c3";
}

use ids::{
    ACCOUNT_TOKYO, ACCOUNT_VIRGINIA, AGENT_STATUS_BREAK, ALICE, BOB, BOB_EMAIL, CAROL, DAIKI,
    HARUTO, HG_JAPAN, HG_OSAKA, HG_TOKYO, HG_TOKYO_FLOOR2, HG_VA, INSTANCE_TOKYO,
    INSTANCE_VIRGINIA, JAMES, KENJI, LI_WEI, MARIA, MEI, ORGANIZATION, QUEUE_BILLING, REGION_TOKYO,
    REGION_VIRGINIA, RIKO, RP_BASIC, RP_SALES, RP_SUPPORT, RP_VA_SUPPORT, SORA, SP_ADMIN, SP_AGENT,
    SP_MANAGER, SP_QA, SP_VA_AGENT, TRAIL_USER, TRAIL_USER_NAME, UNKNOWN_ADMIN, YUKI, agent_arn,
    instance_arn,
};
use ids::{
    AUTH_CODE, FEDERATION_ACCESS_TOKEN, FEDERATION_REFRESH_TOKEN, FEDERATION_URL_TOKEN,
    TRAFFIC_GROUP, WORKSPACE, percent_encoded,
};

/// The seed of every pseudo-random choice (noise, request ids, file name suffixes).
pub const SEED: u64 = 0x0C0F_FEE0_2024_0501;

/// The report window the examples are built around (`demo.toml`): `[since, until)`.
pub const WINDOW: (&str, &str) = ("2024-05-01", "2024-05-08");

/// What `Password`-like request fields hold in CloudTrail: the real value never appears.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// `examples/demo.toml`, written by the generator so it never drifts from the trail.
pub const DEMO_TOML: &str = r#"# connect-audit demo: audits the example trail in examples/ against the example snapshot.
# Generated by `cargo run -p connect-audit-tests --bin make-examples`; edit tests/src/examples.rs.
#
# Paths are relative to the working directory: run from the repository root,
#   cargo run -p connect-audit-cli -- report --config examples/demo.toml
# (or CONNECT_AUDIT_CONFIG=examples/demo.toml connect-audit report). Outputs go to out/demo/,
# which git ignores.

[report]
# The CloudTrail logs: a directory holding AWSLogs/ (plain and organization trails).
trail = "examples/trail"
# The snapshot store of the Connect directory (users/, security-profiles/, routing-profiles/,
# hierarchy-groups/). Without it, only names the trail itself carries are known.
snapshot = "examples/snapshot"
# First instant of the window (a date is midnight UTC). Events before it are not reported,
# even when their file is dated inside the window.
since = "2024-05-01"
# First instant after the window (exclusive): an event at exactly 2024-05-08T00:00:00Z is out.
until = "2024-05-08"
# Which event groups to audit. Default: ["default"]. Try ["all"] to add agent status
# (PutUserStatus), instance settings and sign-in/directory reads.
# events = ["all"]

# Every [[exporters]] entry receives the same records; `type` picks the exporter.

[[exporters]]
# CSV for people and spreadsheets.
type = "csv"
# Output file (written atomically), or "-" for stdout.
path = "out/demo/audit.csv"
# Time zone event_time is shown in. Default: "UTC".
timezone = "Asia/Tokyo"
# Columns and their order. Default: every column of the audit record.
# columns = ["event_time", "event_name", "actor_name", "target_kind", "target_name", "error_code"]
# Prefix cells that a spreadsheet would run as formulas with '. Default: true.
# neutralize_formulas = true

[[exporters]]
# One JSON object per line, for pipes and log shippers.
type = "jsonl"
# Output file, or "-" for stdout.
path = "out/demo/audit.jsonl"

[[exporters]]
# Typed, compressed columns for the data lake.
type = "parquet"
# With partition_by_date, a directory of Hive-style date=YYYY-MM-DD/ partitions (by event
# date, UTC); without it, a single file.
path = "out/demo/parquet"
# Write one partition per event date. Default: false.
partition_by_date = true
# Rows per row group. Default: 65536.
# row_group_size = 65536

[[exporters]]
# One offline page for auditors: the summary, charts and a sortable, filterable table.
type = "html"
# Output file: open it in any browser (no network needed).
path = "out/demo/audit.html"
# Time zone times and days are shown in. Default: "UTC".
timezone = "Asia/Tokyo"
# The page's title. Default: "Amazon Connect user changes".
# title = "Amazon Connect user changes"
# Rows per page of the event table (10 to 5000). Default: 100.
# page_size = 100

# `connect-audit access-review --config examples/demo.toml`: who holds what as of `at`, and
# who gave it, from the snapshot and the trail above. This example snapshot was taken without
# --describe-users, so a user's security profiles are known only where the trail set them.
[access_review]
# The review time (a date is midnight UTC). Default: now.
at = "2024-05-08"
# The start of the review period: a time, or a duration back from `at`. Default: "90d".
since = "2024-05-01"

[[access_review.exporters]]
# The same exporters as above write the review: csv, jsonl, parquet or html.
type = "html"
path = "out/demo/access-review.html"
timezone = "Asia/Tokyo"

[[access_review.exporters]]
# With the reviewer's decision and note columns, empty, to fill in.
type = "csv"
path = "out/demo/access-review.csv"
"#;

/// One file of the examples: its path relative to the output directory, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFile {
    /// Relative path, `/`-separated (e.g. `snapshot/users/<id>.json`).
    pub path: String,
    /// Exact contents.
    pub bytes: Vec<u8>,
}

/// Builds every generated file of `examples/` in memory, sorted by path: `trail/…`,
/// `snapshot/…` and `demo.toml` (`README.md` is written by hand).
pub fn build() -> Vec<ExampleFile> {
    let mut rng = Rng(SEED);
    let mut files = Vec::new();
    let mut tokyo_files = Vec::new();
    for account in ACCOUNTS {
        let planned = plan_account(account, &mut rng);
        for file in &planned {
            files.push(ExampleFile {
                path: file.key.clone(),
                bytes: gzip(file.text.as_bytes()),
            });
        }
        if account.id == ACCOUNT_TOKYO && account.region == REGION_TOKYO {
            tokyo_files = planned;
        }
    }
    files.push(digest(&tokyo_files, &mut rng));
    files.extend(snapshot());
    files.push(ExampleFile {
        path: "demo.toml".into(),
        bytes: DEMO_TOML.as_bytes().to_vec(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The folders [`generate`] owns under its output directory: removed and rewritten whole.
pub const GENERATED_DIRS: [&str; 2] = ["trail", "snapshot"];

/// Writes the examples under `out` (normally the repository's `examples/`).
///
/// `out/trail` and `out/snapshot` are removed first, so files of an older generation do not
/// linger; `out/demo.toml` is overwritten; anything else under `out` (the README) is left
/// alone. The output is byte-identical on every run.
pub fn generate(out: &Path) -> io::Result<()> {
    write(out, &build())
}

/// Writes `files` (from [`build`]) under `out`, as [`generate`] does.
pub fn write(out: &Path, files: &[ExampleFile]) -> io::Result<()> {
    for dir in GENERATED_DIRS {
        match fs::remove_dir_all(out.join(dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(&e, &out.join(dir))),
        }
    }
    for file in files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| with_path(&e, parent))?;
        }
        fs::write(&path, &file.bytes).map_err(|e| with_path(&e, &path))?;
    }
    Ok(())
}

fn with_path(e: &io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests).join("examples")
}

/// Gzip with a fixed header: mtime 0, no file name, OS "unknown".
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

// ---------------------------------------------------------------------------------------------
// Randomness and time

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let n = u64::try_from(items.len()).expect("slice length fits u64");
        let i = usize::try_from(self.next() % n).expect("index below a slice length");
        &items[i]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            (a & 0x0fff) | 0x4000,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    fn alnum(&mut self, n: usize) -> String {
        self.chars(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            n,
        )
    }

    fn upper(&mut self, n: usize) -> String {
        self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", n)
    }

    fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }

    fn ip(&mut self) -> String {
        let net = self.pick(&["192.0.2", "198.51.100", "203.0.113"]);
        format!("{net}.{}", self.range(1, 255))
    }
}

/// Seconds since 2024-04-30T00:00:00Z; the examples live between 04-30 and 05-09.
type Secs = u64;

const DAY: Secs = 86_400;
const HOUR: Secs = 3_600;
const MINUTE: Secs = 60;

/// (month, day) of a day index: 0 is April 30, n is May n.
fn month_day(t: Secs) -> (u64, u64) {
    let day = t / DAY;
    assert!(day <= 31, "the examples stay in May 2024");
    if day == 0 { (4, 30) } else { (5, day) }
}

/// `2024-05-02T09:14:02Z`.
fn iso(t: Secs) -> String {
    let (m, d) = month_day(t);
    let s = t % DAY;
    format!(
        "2024-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / HOUR,
        s % HOUR / MINUTE,
        s % MINUTE
    )
}

/// Reads the `2024-MM-DDTHH:MM:SSZ` texts of this module back into [`Secs`].
fn at(text: &str) -> Secs {
    let n = |r: std::ops::Range<usize>| text[r].parse::<u64>().expect("a time of this module");
    let (month, day) = (n(5..7), n(8..10));
    let days = match (month, day) {
        (4, 30) => 0,
        (5, d) => d,
        _ => panic!("{text} is outside the examples' dates"),
    };
    days * DAY + n(11..13) * HOUR + n(14..16) * MINUTE + n(17..19)
}

/// `20240502T0105Z`, as in trail file names.
fn file_stamp(t: Secs) -> String {
    let (m, d) = month_day(t);
    let s = t % DAY;
    format!("2024{m:02}{d:02}T{:02}{:02}Z", s / HOUR, s % HOUR / MINUTE)
}

/// `2024/05/02`, the delivery-date folders.
fn date_dirs(t: Secs) -> String {
    let (m, d) = month_day(t);
    format!("2024/{m:02}/{d:02}")
}

// ---------------------------------------------------------------------------------------------
// Accounts and trail files

/// Noise: other services' and read-only calls the scanner must skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noise {
    S3GetObject,
    StsAssumeRole,
    Ec2DescribeInstances,
    KmsDecrypt,
    LambdaInvoke,
    GetContactAttributes,
    DescribeUser,
    ListUsers,
}

/// One account-and-region folder of the trail.
struct Account {
    id: &'static str,
    region: &'static str,
    /// The organization, for an organization trail's layout.
    org: Option<&'static str>,
    /// The Connect instance of this account and region.
    instance: &'static str,
    /// Admin-website users who browse (the `DescribeUser` noise).
    admins: &'static [&'static str],
    /// Users of the instance (targets of read noise).
    users: &'static [&'static str],
    /// The Connect service-linked role's name suffix and role id.
    connect_role: (&'static str, &'static str),
    /// Delivery days (May) and hours of the files.
    days: &'static [u64],
    hours: &'static [u64],
    /// How many noise records a file holds: `lo..hi`.
    noise: (u64, u64),
    noise_kinds: &'static [Noise],
}

const ALL_NOISE: &[Noise] = &[
    Noise::S3GetObject,
    Noise::S3GetObject,
    Noise::S3GetObject,
    Noise::StsAssumeRole,
    Noise::StsAssumeRole,
    Noise::Ec2DescribeInstances,
    Noise::Ec2DescribeInstances,
    Noise::KmsDecrypt,
    Noise::KmsDecrypt,
    Noise::LambdaInvoke,
    Noise::LambdaInvoke,
    Noise::GetContactAttributes,
    Noise::DescribeUser,
    Noise::ListUsers,
];

const ACCOUNTS: &[Account] = &[
    Account {
        id: ACCOUNT_TOKYO,
        region: REGION_TOKYO,
        org: None,
        instance: INSTANCE_TOKYO,
        admins: &[ALICE, BOB],
        users: &[ALICE, BOB, KENJI, YUKI, HARUTO, MEI, SORA, RIKO, DAIKI],
        connect_role: ("DwT0YgEuWX9uaWsPKbOu", "AROAR4KXQ2ZB7CNCTTKY1"),
        days: &[1, 2, 3, 4, 5, 6, 7, 8],
        hours: &[0, 6, 12, 18],
        noise: (10, 20),
        noise_kinds: ALL_NOISE,
    },
    // The same account's global-service events (IAM) land in us-east-1.
    Account {
        id: ACCOUNT_TOKYO,
        region: REGION_VIRGINIA,
        org: None,
        instance: INSTANCE_TOKYO,
        admins: &[],
        users: &[],
        connect_role: ("DwT0YgEuWX9uaWsPKbOu", "AROAR4KXQ2ZB7CNCTTKY1"),
        days: &[3],
        hours: &[12],
        noise: (4, 6),
        noise_kinds: &[Noise::StsAssumeRole, Noise::Ec2DescribeInstances],
    },
    Account {
        id: ACCOUNT_VIRGINIA,
        region: REGION_VIRGINIA,
        org: Some(ORGANIZATION),
        instance: INSTANCE_VIRGINIA,
        admins: &[CAROL],
        users: &[CAROL, MARIA, LI_WEI, JAMES],
        connect_role: ("Q8rTz2LmVb5nXe1Kp0Wd", "AROAT7HMW3PLQ9CNCTVA2"),
        days: &[1, 2, 3, 4, 5, 6, 7, 8],
        hours: &[3, 15],
        noise: (4, 9),
        noise_kinds: ALL_NOISE,
    },
];

/// A planned trail file.
struct TrailFile {
    /// Key under the examples directory, `trail/AWSLogs/…`.
    key: String,
    /// The S3 object key (`AWSLogs/…`), as a digest names it.
    object: String,
    delivery: Secs,
    oldest: Secs,
    newest: Secs,
    text: String,
}

fn plan_account(account: &Account, rng: &mut Rng) -> Vec<TrailFile> {
    let mut deliveries = Vec::new();
    for &day in account.days {
        for &hour in account.hours {
            deliveries.push(day * DAY + hour * HOUR + rng.range(5, 14) * MINUTE);
        }
    }
    let mut records: Vec<Vec<(Secs, J)>> = deliveries.iter().map(|_| Vec::new()).collect();
    for spec in audited() {
        if spec.account != account.id || spec.region() != account.region {
            continue;
        }
        let time = at(spec.time);
        let first = deliveries
            .iter()
            .position(|&d| d > time)
            .unwrap_or_else(|| panic!("no file delivers event {}", spec.id));
        let record = spec.record(account, rng);
        if spec.twice {
            records[first + 1].push((time, record.clone()));
        }
        records[first].push((time, record));
    }
    let mut files = Vec::new();
    for (i, &delivery) in deliveries.iter().enumerate() {
        let start = if i == 0 {
            delivery - 6 * HOUR
        } else {
            deliveries[i - 1] - 5 * MINUTE
        };
        for _ in 0..rng.range(account.noise.0, account.noise.1) {
            let time = rng.range(start, delivery - MINUTE);
            let kind = *rng.pick(account.noise_kinds);
            records[i].push((time, noise(kind, account, time, rng)));
        }
        let mut recs = std::mem::take(&mut records[i]);
        recs.sort_by_key(|(t, _)| *t);
        let oldest = recs.first().map_or(delivery, |(t, _)| *t);
        let newest = recs.last().map_or(delivery, |(t, _)| *t);
        let mut text = String::from("{\"Records\":[");
        for (n, (_, rec)) in recs.iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.push_str(&rec.to_text());
        }
        text.push_str("]}");
        let dir = match account.org {
            Some(org) => format!("AWSLogs/{org}/{}", account.id),
            None => format!("AWSLogs/{}", account.id),
        };
        let object = format!(
            "{dir}/CloudTrail/{region}/{dates}/{id}_CloudTrail_{region}_{stamp}_{suffix}.json.gz",
            region = account.region,
            dates = date_dirs(delivery),
            id = account.id,
            stamp = file_stamp(delivery),
            suffix = rng.alnum(16),
        );
        files.push(TrailFile {
            key: format!("trail/{object}"),
            object,
            delivery,
            oldest,
            newest,
            text,
        });
    }
    files
}

/// The digest CloudTrail writes every hour: no `Records`, a list of log files and hashes.
/// The hashes and signatures here are placeholders, not real SHA-256 values.
fn digest(tokyo: &[TrailFile], rng: &mut Rng) -> ExampleFile {
    let start = at("2024-05-02T00:00:00Z");
    let end = start + HOUR;
    let bucket = format!("aws-cloudtrail-logs-{ACCOUNT_TOKYO}-connect-audit");
    let digest_dir = format!("AWSLogs/{ACCOUNT_TOKYO}/CloudTrail-Digest/{REGION_TOKYO}");
    let name = |t: Secs| {
        let (m, d) = month_day(t);
        let s = t % DAY;
        format!(
            "{digest_dir}/{dates}/{ACCOUNT_TOKYO}_CloudTrail-Digest_{REGION_TOKYO}_connect-audit_{REGION_TOKYO}_2024{m:02}{d:02}T{:02}{:02}{:02}Z.json.gz",
            s / HOUR,
            s % HOUR / MINUTE,
            s % MINUTE,
            dates = date_dirs(t),
        )
    };
    let log_files: Vec<J> = tokyo
        .iter()
        .filter(|f| (start..end).contains(&f.delivery))
        .map(|f| {
            obj! {
                "s3Bucket" => bucket.as_str(),
                "s3Object" => f.object.as_str(),
                "hashValue" => rng.hex(64),
                "hashAlgorithm" => "SHA-256",
                "newestEventTime" => iso(f.newest),
                "oldestEventTime" => iso(f.oldest),
            }
        })
        .collect();
    assert!(!log_files.is_empty(), "the digest lists at least one file");
    let doc = obj! {
        "awsAccountId" => ACCOUNT_TOKYO,
        "digestStartTime" => iso(start),
        "digestEndTime" => iso(end),
        "digestS3Bucket" => bucket.as_str(),
        "digestS3Object" => name(end),
        "digestPublicKeyFingerprint" => rng.hex(32),
        "digestSignatureAlgorithm" => "SHA256withRSA",
        "newestEventTime" => iso(end - MINUTE),
        "oldestEventTime" => iso(start - 5 * MINUTE),
        "previousDigestS3Bucket" => bucket.as_str(),
        "previousDigestS3Object" => name(start),
        "previousDigestHashValue" => rng.hex(64),
        "previousDigestHashAlgorithm" => "SHA-256",
        "previousDigestSignature" => rng.hex(512),
        "logFiles" => log_files,
    };
    ExampleFile {
        path: format!("trail/{}", name(end)),
        bytes: gzip(doc.to_text().as_bytes()),
    }
}

// ---------------------------------------------------------------------------------------------
// CloudTrail records

/// Who made an audited call.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// An admin-website user: the Connect service-linked role, session name = user id.
    Console(&'static str),
    /// An admin-website user whose session name is `<id>@<email>`, cut to 64 characters.
    ConsoleWithEmail(&'static str, &'static str),
    /// An IAM Identity Center (SSO) session using the AWS CLI.
    Sso,
    /// An IAM user with access keys, using Boto3.
    IamUser,
    /// The Global Resiliency synchronization role.
    Sync,
    /// A CloudFormation stack's role: CloudFormation calls the API on the user's behalf and
    /// records URI path parameters percent-encoded.
    CloudFormation,
}

const CFN_ROLE: &str = "connect-users-stack-CfnExecutionRole-1XAMPLE9Z0QK";
const CFN_ROLE_ID: &str = "AROAR4KXQ2ZB7CFNEXEC1";
const CFN_SERVICE: &str = "cloudformation.amazonaws.com";

const SSO_ROLE: &str = "AWSReservedSSO_ConnectAdmins_0123456789abcdef";
const SSO_ROLE_ID: &str = "AROAR4KXQ2ZB7SSOADMN1";
const SSO_SESSION: &str = "admin@example.com";
const SYNC_ROLE: &str = "AWSServiceRoleForAmazonConnectSynchronization_0b4e5c1a-7d2f-4e8b";
const SYNC_ROLE_ID: &str = "AROAT7HMW3PLQ9SYNCVA3";
const IAM_USER: &str = "ops-automation";
const IAM_USER_ID: &str = "AIDAR4KXQ2ZB7OPSAUTO1";
const SYNC_SERVICE: &str = "synchronization.connect.amazonaws.com";
const CONNECT: &str = "connect.amazonaws.com";
const BOTO3: &str = "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.214-223.838.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.84";
const LAMBDA_BOTO3: &str = "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.214-223.838.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.2 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.84";
const TLS13: &str = "TLS_AES_128_GCM_SHA256";

/// `UpdateUserSecurityProfiles` → `update-user-security-profiles`, as the CLI names commands.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn aws_cli(service: &str, name: &str) -> String {
    format!(
        "aws-cli/2.15.40 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off md/command#{service}.{}",
        kebab(name)
    )
}

fn tls(host: String) -> J {
    obj! {"tlsVersion" => "TLSv1.3", "cipherSuite" => TLS13, "clientProvidedHostHeader" => host}
}

/// `userIdentity` of an assumed-role session.
struct Session<'a> {
    account: &'a str,
    role: &'a str,
    role_id: &'a str,
    /// The role's path, e.g. `aws-service-role/connect.amazonaws.com/`.
    path: &'a str,
    /// The role session name.
    name: &'a str,
    invoked_by: Option<&'a str>,
    time: Secs,
}

impl Session<'_> {
    fn identity(&self, rng: &mut Rng) -> J {
        let Session {
            account,
            role,
            role_id,
            path,
            name: session,
            ..
        } = *self;
        let mut identity = obj! {
            "type" => "AssumedRole",
            "principalId" => format!("{role_id}:{session}"),
            "arn" => format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            "accountId" => account,
            "accessKeyId" => format!("ASIA{}", rng.upper(16)),
            "sessionContext" => obj! {
                "sessionIssuer" => obj! {
                    "type" => "Role",
                    "principalId" => role_id,
                    "arn" => format!("arn:aws:iam::{account}:role/{path}{role}"),
                    "accountId" => account,
                    "userName" => role,
                },
                "attributes" => obj! {
                    "creationDate" => iso(self.time - rng.range(1, 50) * MINUTE),
                    "mfaAuthenticated" => "false",
                },
            },
        };
        if let Some(by) = self.invoked_by {
            identity.push("invokedBy", by);
        }
        identity
    }
}

/// Everything a CloudTrail record says, in CloudTrail's field order.
struct Call {
    time: Secs,
    identity: J,
    source: &'static str,
    name: &'static str,
    region: &'static str,
    ip: String,
    agent: String,
    error: Option<(&'static str, String)>,
    request: J,
    response: J,
    additional: Option<J>,
    event_id: String,
    read_only: bool,
    resources: Option<J>,
    account: &'static str,
    data_event: bool,
    tls: Option<J>,
}

impl Call {
    fn record(self, rng: &mut Rng) -> J {
        let mut r = obj! {
            "eventVersion" => if self.data_event { "1.10" } else { "1.09" },
            "userIdentity" => self.identity,
            "eventTime" => iso(self.time),
            "eventSource" => self.source,
            "eventName" => self.name,
            "awsRegion" => self.region,
            "sourceIPAddress" => self.ip,
            "userAgent" => self.agent,
        };
        if let Some((code, message)) = self.error {
            r.push("errorCode", code);
            r.push("errorMessage", message);
        }
        r.push("requestParameters", self.request);
        r.push("responseElements", self.response);
        if let Some(extra) = self.additional {
            r.push("additionalEventData", extra);
        }
        r.push("requestID", rng.uuid());
        r.push("eventID", self.event_id);
        r.push("readOnly", self.read_only);
        if let Some(resources) = self.resources {
            r.push("resources", resources);
        }
        r.push("eventType", "AwsApiCall");
        r.push("managementEvent", !self.data_event);
        r.push("recipientAccountId", self.account);
        r.push(
            "eventCategory",
            if self.data_event {
                "Data"
            } else {
                "Management"
            },
        );
        if let Some(tls) = self.tls {
            r.push("tlsDetails", tls);
        }
        r
    }
}

/// One audited (or deliberately unaudited) event of the trail.
struct Spec {
    account: &'static str,
    id: &'static str,
    time: &'static str,
    who: Who,
    source: &'static str,
    name: &'static str,
    request: J,
    response: J,
    error: Option<(&'static str, String)>,
    /// Delivered a second time, in the next file.
    twice: bool,
}

impl Spec {
    fn new(account: &'static str, id: &'static str, time: &'static str, who: Who) -> Self {
        Self {
            account,
            id,
            time,
            who,
            source: CONNECT,
            name: "",
            request: J::Null,
            response: J::Null,
            error: None,
            twice: false,
        }
    }

    fn call(mut self, name: &'static str, request: J) -> Self {
        self.name = name;
        self.request = request;
        self
    }

    fn response(mut self, response: J) -> Self {
        self.response = response;
        self
    }

    /// The trail folder's region: IAM is global and logged in us-east-1.
    fn region(&self) -> &'static str {
        match (self.account, self.source) {
            (ACCOUNT_TOKYO, CONNECT) => REGION_TOKYO,
            _ => REGION_VIRGINIA,
        }
    }

    fn record(&self, account: &Account, rng: &mut Rng) -> J {
        let time = at(self.time);
        let (role_suffix, role_id) = account.connect_role;
        let connect_role = format!("AWSServiceRoleForAmazonConnect_{role_suffix}");
        let console = |session: &str, rng: &mut Rng| {
            Session {
                account: account.id,
                role: &connect_role,
                role_id,
                path: "aws-service-role/connect.amazonaws.com/",
                name: session,
                invoked_by: Some(CONNECT),
                time,
            }
            .identity(rng)
        };
        let service = self.source.trim_end_matches(".amazonaws.com");
        let host = if service == "iam" {
            "iam.amazonaws.com".to_owned()
        } else {
            format!("{service}.{}.amazonaws.com", account.region)
        };
        let (identity, ip, agent, tls) = match self.who {
            Who::Console(user) => (console(user, rng), CONNECT.into(), CONNECT.into(), None),
            Who::ConsoleWithEmail(user, email) => {
                let session = format!("{user}@{email}");
                let session = &session[..session.len().min(64)];
                (console(session, rng), CONNECT.into(), CONNECT.into(), None)
            }
            Who::Sso => (
                Session {
                    account: account.id,
                    role: SSO_ROLE,
                    role_id: SSO_ROLE_ID,
                    path: "aws-reserved/sso.amazonaws.com/ap-northeast-1/",
                    name: SSO_SESSION,
                    invoked_by: None,
                    time,
                }
                .identity(rng),
                "203.0.113.10".into(),
                aws_cli(service, self.name),
                Some(tls(host)),
            ),
            Who::IamUser => (
                obj! {
                    "type" => "IAMUser",
                    "principalId" => IAM_USER_ID,
                    "arn" => format!("arn:aws:iam::{}:user/{IAM_USER}", account.id),
                    "accountId" => account.id,
                    "accessKeyId" => "AKIAR4KXQ2ZB7EXAMPLE",
                    "userName" => IAM_USER,
                },
                "198.51.100.23".into(),
                BOTO3.into(),
                Some(tls(host)),
            ),
            Who::Sync => (
                Session {
                    account: account.id,
                    role: SYNC_ROLE,
                    role_id: SYNC_ROLE_ID,
                    path: "aws-service-role/connect.amazonaws.com/",
                    name: "ResourceSynchronization",
                    invoked_by: Some(SYNC_SERVICE),
                    time,
                }
                .identity(rng),
                SYNC_SERVICE.into(),
                SYNC_SERVICE.into(),
                None,
            ),
            Who::CloudFormation => (
                Session {
                    account: account.id,
                    role: CFN_ROLE,
                    role_id: CFN_ROLE_ID,
                    path: "",
                    name: "AWSCloudFormation",
                    invoked_by: Some(CFN_SERVICE),
                    time,
                }
                .identity(rng),
                CFN_SERVICE.into(),
                CFN_SERVICE.into(),
                None,
            ),
        };
        let read_only = ["Describe", "List", "Get", "Search"]
            .iter()
            .any(|p| self.name.starts_with(p));
        Call {
            time,
            identity,
            source: self.source,
            name: self.name,
            region: if self.source == CONNECT {
                account.region
            } else {
                REGION_VIRGINIA
            },
            ip,
            agent,
            error: self.error.clone(),
            request: self.request.clone(),
            response: self.response.clone(),
            additional: None,
            event_id: self.id.to_owned(),
            read_only,
            resources: None,
            account: account.id,
            data_event: false,
            tls,
        }
        .record(rng)
    }
}

/// Every notable event of the trail (see [`events`]).
fn audited() -> Vec<Spec> {
    use events as e;
    let t = ACCOUNT_TOKYO;
    let v = ACCOUNT_VIRGINIA;
    let tokyo_agent = |user: &str| agent_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO, user);
    let tokyo_arn = |kind: &str, id: &str| {
        format!(
            "{}/{kind}/{id}",
            instance_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO)
        )
    };
    let identity_info = || obj! {"FirstName" => HIDDEN, "LastName" => HIDDEN, "Email" => HIDDEN};
    let alice = Who::Console(ALICE);
    let bob = Who::ConsoleWithEmail(BOB, BOB_EMAIL);
    vec![
        Spec::new(t, e::BEFORE_WINDOW, "2024-04-30T23:59:59Z", alice).call(
            "UpdateUserPhoneConfig",
            obj! {
                "PhoneConfig" => obj! {"PhoneType" => "SOFT_PHONE", "AutoAccept" => true, "AfterContactWorkTimeLimit" => 30_i64},
                "UserId" => YUKI,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::CREATE_SECURITY_PROFILE, "2024-05-01T02:14:09Z", alice)
            .call(
                "CreateSecurityProfile",
                obj! {
                    "SecurityProfileName" => "QualityAnalyst",
                    "Description" => "Listens to recordings and evaluates contacts",
                    "Permissions" => arr!["ContactSearch.View", "RecordingPlayback.View", "ContactEvaluations.View"],
                    "InstanceId" => INSTANCE_TOKYO,
                },
            )
            .response(obj! {
                "SecurityProfileId" => SP_QA,
                "SecurityProfileArn" => tokyo_arn("security-profile", SP_QA),
            }),
        Spec::new(t, e::UPDATE_SECURITY_PROFILE, "2024-05-01T05:40:31Z", alice).call(
            "UpdateSecurityProfile",
            obj! {
                "Permissions" => arr!["BasicAgentAccess", "OutboundCallAccess", "TransferDestinations.View"],
                "SecurityProfileId" => SP_AGENT,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::SSO_USER_SECURITY_PROFILES, "2024-05-02T01:12:44Z", Who::Sso).call(
            "UpdateUserSecurityProfiles",
            obj! {
                "SecurityProfileIds" => arr![SP_AGENT, SP_QA],
                "UserId" => KENJI,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::ROUTING_PROFILE_ARN_IDS, "2024-05-02T04:33:10Z", alice).call(
            "UpdateUserRoutingProfile",
            obj! {
                "RoutingProfileId" => RP_SUPPORT,
                "UserId" => tokyo_agent(YUKI),
                "InstanceId" => instance_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO),
            },
        ),
        Spec::new(t, e::IAM_USER_HIERARCHY, "2024-05-02T07:20:05Z", Who::IamUser).call(
            "UpdateUserHierarchy",
            obj! {"HierarchyGroupId" => HG_TOKYO_FLOOR2, "UserId" => HARUTO, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec {
            error: Some((
                "AccessDeniedException",
                format!(
                    "User: arn:aws:iam::{ACCOUNT_TOKYO}:user/{IAM_USER} is not authorized to perform: connect:UpdateUserSecurityProfiles on resource: {} because no identity-based policy allows the connect:UpdateUserSecurityProfiles action",
                    tokyo_agent(HARUTO)
                ),
            )),
            ..Spec::new(t, e::ACCESS_DENIED, "2024-05-02T07:21:37Z", Who::IamUser).call(
                "UpdateUserSecurityProfiles",
                obj! {"SecurityProfileIds" => arr![SP_ADMIN], "UserId" => HARUTO, "InstanceId" => INSTANCE_TOKYO},
            )
        },
        Spec::new(t, e::LONG_SESSION_IDENTITY_INFO, "2024-05-02T09:05:52Z", bob).call(
            "UpdateUserIdentityInfo",
            obj! {"IdentityInfo" => identity_info(), "UserId" => MEI, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::CREATE_TRAIL_USER, "2024-05-03T01:12:40Z", alice)
            .call(
                "CreateUser",
                obj! {
                    "Username" => TRAIL_USER_NAME,
                    "Password" => HIDDEN,
                    "IdentityInfo" => identity_info(),
                    "PhoneConfig" => obj! {"PhoneType" => "SOFT_PHONE", "AutoAccept" => false, "AfterContactWorkTimeLimit" => 0_i64},
                    "SecurityProfileIds" => arr![SP_AGENT],
                    "RoutingProfileId" => RP_SUPPORT,
                    "HierarchyGroupId" => HG_TOKYO,
                    "InstanceId" => INSTANCE_TOKYO,
                },
            )
            .response(obj! {"UserId" => TRAIL_USER, "UserArn" => tokyo_agent(TRAIL_USER)}),
        Spec::new(t, e::TRAIL_USER_SECURITY_PROFILES, "2024-05-03T01:20:18Z", alice).call(
            "UpdateUserSecurityProfiles",
            obj! {"SecurityProfileIds" => arr![SP_AGENT, SP_QA], "UserId" => TRAIL_USER, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::TAG_AGENT, "2024-05-03T01:25:03Z", alice).call(
            "TagResource",
            obj! {
                "resourceArn" => tokyo_agent(TRAIL_USER),
                "tags" => obj! {"contractor" => "true", "cost-center" => "cc-4410"},
            },
        ),
        Spec {
            source: "iam.amazonaws.com",
            ..Spec::new(t, e::IAM_CREATE_USER, "2024-05-03T11:40:10Z", Who::Sso)
                .call("CreateUser", obj! {"userName" => "connect-reporting"})
                .response(obj! {
                    "user" => obj! {
                        "path" => "/",
                        "userName" => "connect-reporting",
                        "userId" => "AIDAR4KXQ2ZB7REPORT01",
                        "arn" => format!("arn:aws:iam::{ACCOUNT_TOKYO}:user/connect-reporting"),
                        "createDate" => "May 3, 2024, 11:40:10 AM",
                    },
                })
        },
        Spec::new(t, e::DELETE_TRAIL_USER, "2024-05-03T16:48:29Z", bob).call(
            "DeleteUser",
            obj! {"InstanceId" => INSTANCE_TOKYO, "UserId" => TRAIL_USER},
        ),
        Spec::new(t, e::DESCRIBE_USER, "2024-05-04T02:15:00Z", alice).call(
            "DescribeUser",
            obj! {"UserId" => SORA, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec {
            twice: true,
            ..Spec::new(t, e::DUPLICATE, "2024-05-04T03:02:55Z", Who::Sso).call(
                "UpdateUserRoutingProfile",
                obj! {"RoutingProfileId" => RP_SALES, "UserId" => SORA, "InstanceId" => INSTANCE_TOKYO},
            )
        },
        Spec::new(t, e::TAG_QUEUE, "2024-05-04T08:10:26Z", Who::Sso).call(
            "TagResource",
            obj! {"resourceArn" => tokyo_arn("queue", QUEUE_BILLING), "tags" => obj! {"team" => "billing"}},
        ),
        Spec::new(t, e::HIERARCHY_STRUCTURE, "2024-05-05T02:00:14Z", alice).call(
            "UpdateUserHierarchyStructure",
            obj! {
                "HierarchyStructure" => obj! {
                    "LevelOne" => obj! {"Name" => "Country"},
                    "LevelTwo" => obj! {"Name" => "Site"},
                    "LevelThree" => obj! {"Name" => "Team"},
                },
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::RENAME_HIERARCHY_GROUP, "2024-05-05T02:10:47Z", alice).call(
            "UpdateUserHierarchyGroupName",
            obj! {"Name" => "Tokyo Floor 2", "HierarchyGroupId" => HG_TOKYO_FLOOR2, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::ROUTING_PROFILE_QUEUES, "2024-05-05T05:30:02Z", alice).call(
            "UpdateRoutingProfileQueues",
            obj! {
                "InstanceId" => INSTANCE_TOKYO,
                "RoutingProfileId" => RP_SUPPORT,
                "QueueConfigs" => arr![
                    obj! {"QueueReference" => obj! {"QueueId" => QUEUE_BILLING, "Channel" => "VOICE"}, "Priority" => 1_i64, "Delay" => 0_i64},
                    obj! {"QueueReference" => obj! {"QueueId" => QUEUE_BILLING, "Channel" => "CHAT"}, "Priority" => 2_i64, "Delay" => 30_i64},
                ],
            },
        ),
        Spec::new(t, e::UNKNOWN_ADMIN, "2024-05-06T00:40:12Z", Who::Console(UNKNOWN_ADMIN)).call(
            "UpdateUserPhoneConfig",
            obj! {
                "PhoneConfig" => obj! {"PhoneType" => "DESK_PHONE", "AutoAccept" => false, "AfterContactWorkTimeLimit" => 60_i64, "DeskPhoneNumber" => "+81312345678"},
                "UserId" => KENJI,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::PUT_USER_STATUS, "2024-05-06T03:00:09Z", alice).call(
            "PutUserStatus",
            obj! {"UserId" => KENJI, "InstanceId" => INSTANCE_TOKYO, "AgentStatusId" => AGENT_STATUS_BREAK},
        ),
        Spec::new(t, e::PHONE_CONFIG, "2024-05-06T07:45:30Z", alice).call(
            "UpdateUserPhoneConfig",
            obj! {
                "PhoneConfig" => obj! {"PhoneType" => "SOFT_PHONE", "AutoAccept" => true, "AfterContactWorkTimeLimit" => 20_i64},
                "UserId" => RIKO,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::CREATE_HIERARCHY_GROUP, "2024-05-07T15:00:36Z", alice)
            .call(
                "CreateUserHierarchyGroup",
                obj! {"Name" => "Osaka Team", "ParentGroupId" => HG_JAPAN, "InstanceId" => INSTANCE_TOKYO},
            )
            .response(obj! {
                "HierarchyGroupId" => HG_OSAKA,
                "HierarchyGroupArn" => tokyo_arn("agent-group", HG_OSAKA),
            }),
        Spec::new(t, e::LATE_DELIVERY, "2024-05-07T23:58:00Z", alice).call(
            "UpdateUserHierarchy",
            obj! {"HierarchyGroupId" => HG_OSAKA, "UserId" => DAIKI, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::AT_UNTIL, "2024-05-08T00:00:00Z", alice).call(
            "UpdateUserRoutingProfile",
            obj! {"RoutingProfileId" => RP_BASIC, "UserId" => DAIKI, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::ENCODED_INSTANCE, "2024-05-02T10:11:12Z", Who::CloudFormation).call(
            "UpdateUserHierarchy",
            obj! {
                "HierarchyGroupId" => HG_TOKYO,
                "UserId" => SORA,
                "InstanceId" => percent_encoded(&instance_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO)),
            },
        ),
        Spec::new(t, e::ENCODED_USER_ARN, "2024-05-02T10:11:14Z", Who::CloudFormation).call(
            "UpdateUserRoutingProfile",
            obj! {
                "RoutingProfileId" => RP_SUPPORT,
                "UserId" => percent_encoded(&tokyo_agent(RIKO)),
                "InstanceId" => percent_encoded(&instance_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO)),
            },
        ),
        Spec::new(t, e::ENCODED_TAG_AGENT, "2024-05-02T10:11:16Z", Who::CloudFormation).call(
            "TagResource",
            obj! {
                "resourceArn" => percent_encoded(&tokyo_agent(RIKO)),
                "tags" => obj! {"managed-by" => "cloudformation"},
            },
        ),
        Spec::new(t, e::ENCODED_ENTITY_ARN, "2024-05-02T10:11:18Z", Who::CloudFormation).call(
            "AssociateSecurityProfiles",
            obj! {
                "SecurityProfiles" => arr![obj! {"Id" => SP_QA}],
                "EntityType" => "USER",
                "EntityArn" => percent_encoded(&tokyo_agent(RIKO)),
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::ASSOCIATE_WORKSPACE, "2024-05-03T05:00:41Z", alice).call(
            "AssociateWorkspace",
            obj! {
                "ResourceArns" => arr![
                    tokyo_agent(KENJI),
                    tokyo_agent(YUKI),
                    tokyo_arn("routing-profile", RP_SALES),
                    tokyo_agent(HARUTO),
                    tokyo_agent(MEI),
                ],
                "WorkspaceId" => WORKSPACE,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::DISASSOCIATE_WORKSPACE, "2024-05-03T05:02:07Z", alice).call(
            "DisassociateWorkspace",
            obj! {
                "ResourceArns" => arr![tokyo_agent(MEI)],
                "WorkspaceId" => WORKSPACE,
                "InstanceId" => INSTANCE_TOKYO,
            },
        ),
        Spec::new(t, e::WORKSPACE_VISIBILITY, "2024-05-03T05:03:30Z", alice).call(
            "UpdateWorkspaceVisibility",
            obj! {"Visibility" => "ASSIGNED", "WorkspaceId" => WORKSPACE, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::CREATE_TRAFFIC_GROUP, "2024-05-04T06:00:00Z", Who::Sso)
            .call(
                "CreateTrafficDistributionGroup",
                obj! {
                    "Name" => "tokyo-osaka-failover",
                    "InstanceId" => instance_arn(REGION_TOKYO, ACCOUNT_TOKYO, INSTANCE_TOKYO),
                    "ClientToken" => "3f9c6a1e-2b7d-4c0e-9a8f-5d1e2c3b4a59",
                },
            )
            .response(obj! {
                "Id" => TRAFFIC_GROUP,
                "Arn" => format!("arn:aws:connect:{REGION_TOKYO}:{ACCOUNT_TOKYO}:traffic-distribution-group/{TRAFFIC_GROUP}"),
            }),
        Spec::new(t, e::UPDATE_TRAFFIC, "2024-05-04T06:20:00Z", Who::Sso).call(
            "UpdateTrafficDistribution",
            obj! {
                "Id" => TRAFFIC_GROUP,
                "SignInConfig" => obj! {"Distributions" => arr![
                    obj! {"Region" => REGION_TOKYO, "Enabled" => true},
                    obj! {"Region" => "ap-northeast-3", "Enabled" => true},
                ]},
                "AgentConfig" => obj! {"Distributions" => arr![
                    obj! {"Region" => REGION_TOKYO, "Percentage" => 100_i64},
                    obj! {"Region" => "ap-northeast-3", "Percentage" => 0_i64},
                ]},
            },
        ),
        Spec::new(t, e::DELETE_TRAFFIC_GROUP, "2024-05-06T06:40:00Z", Who::Sso).call(
            "DeleteTrafficDistributionGroup",
            obj! {"TrafficDistributionGroupId" => TRAFFIC_GROUP},
        ),
        Spec::new(t, e::DISASSOCIATE_ORIGIN, "2024-05-05T08:00:00Z", Who::Sso).call(
            "DisassociateApprovedOrigin",
            obj! {"Origin" => "https://crm.example-callcenter.co.jp", "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::DISASSOCIATE_KEY, "2024-05-05T08:05:00Z", Who::Sso).call(
            "DisassociateSecurityKey",
            obj! {"AssociationId" => "9c1b7e04d3a2f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2", "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::FEDERATION_TOKEN, "2024-05-06T00:02:11Z", Who::Sso)
            .call("GetFederationToken", obj! {"InstanceId" => INSTANCE_TOKYO})
            .response(obj! {
                "Credentials" => obj! {
                    "AccessToken" => FEDERATION_ACCESS_TOKEN,
                    "AccessTokenExpiration" => "May 6, 2024, 12:14:11 AM",
                    "RefreshToken" => FEDERATION_REFRESH_TOKEN,
                    "RefreshTokenExpiration" => "May 6, 2024, 12:02:11 PM",
                },
                "SignInUrl" => format!("https://example-callcenter.my.connect.aws/auth/sign-in?token={FEDERATION_URL_TOKEN}"),
                "UserArn" => tokyo_agent(SORA),
                "UserId" => SORA,
            }),
        Spec::new(t, e::DELETE_WORKSPACE, "2024-05-07T02:00:00Z", alice).call(
            "DeleteWorkspace",
            obj! {"WorkspaceId" => WORKSPACE, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::CROSS_REGION_ROUTING, "2024-05-06T06:45:00Z", Who::Sso).call(
            "UpdateCrossRegionRouting",
            obj! {"IsolatedAll" => false, "InstanceId" => INSTANCE_TOKYO},
        ),
        Spec::new(t, e::CREATE_AUTH_CODE, "2024-05-05T11:20:00Z", Who::Sso)
            .call(
                "CreateAuthCode",
                obj! {
                    "Scope" => obj! {
                        "SecurityProfileIds" => arr![SP_AGENT],
                        "EntityType" => "CUSTOMER_PROFILE",
                        "EntityId" => "6f2d1c0b9a8e4d7c8b5a4f3e2d1c0b9a",
                        "DomainName" => "example-callcenter-customers",
                    },
                    "InstanceId" => INSTANCE_TOKYO,
                },
            )
            .response(obj! {
                "AuthCode" => AUTH_CODE,
                "SessionId" => "4c3b2a19-0f8e-4d7c-b6a5-948372615f0e",
                "EntityType" => "CUSTOMER_PROFILE",
                "EntityId" => "6f2d1c0b9a8e4d7c8b5a4f3e2d1c0b9a",
            }),
        Spec::new(v, e::ORG_CONSOLE, "2024-05-02T14:00:21Z", Who::Console(CAROL)).call(
            "UpdateUserSecurityProfiles",
            obj! {"SecurityProfileIds" => arr![SP_VA_AGENT], "UserId" => MARIA, "InstanceId" => INSTANCE_VIRGINIA},
        ),
        Spec::new(v, e::ORG_HIERARCHY, "2024-05-04T15:31:09Z", Who::Console(CAROL)).call(
            "UpdateUserHierarchy",
            obj! {"HierarchyGroupId" => HG_VA, "UserId" => JAMES, "InstanceId" => INSTANCE_VIRGINIA},
        ),
        Spec::new(v, e::SYNC_DELETE, "2024-05-05T16:20:44Z", Who::Sync).call(
            "DeleteUser",
            obj! {
                "InstanceId" => instance_arn(REGION_VIRGINIA, ACCOUNT_VIRGINIA, INSTANCE_VIRGINIA),
                "UserId" => agent_arn(REGION_VIRGINIA, ACCOUNT_VIRGINIA, INSTANCE_VIRGINIA, LI_WEI),
            },
        ),
    ]
}

/// One record of another service, or a Connect read, at `time`.
fn noise(kind: Noise, account: &Account, time: Secs, rng: &mut Rng) -> J {
    let acct = account.id;
    let region = account.region;
    let lambda_role = Session {
        account: acct,
        role: "ContactFlowLookupRole",
        role_id: "AROAR4KXQ2ZB7LAMBDA01",
        path: "service-role/",
        name: "contact-flow-lookup",
        invoked_by: None,
        time,
    };
    let function = format!("arn:aws:lambda:{region}:{acct}:function:contact-flow-lookup");
    let host = |service: &str| format!("{service}.{region}.amazonaws.com");
    let base = |rng: &mut Rng| Call {
        time,
        identity: lambda_role.identity(rng),
        source: "",
        name: "",
        region,
        ip: rng.ip(),
        agent: LAMBDA_BOTO3.into(),
        error: None,
        request: J::Null,
        response: J::Null,
        additional: None,
        event_id: rng.uuid(),
        read_only: true,
        resources: None,
        account: acct,
        data_event: false,
        tls: None,
    };
    let call = match kind {
        Noise::S3GetObject => {
            let bucket = format!("amazon-connect-recordings-{acct}");
            let key = format!(
                "connect/callcenter/CallRecordings/{}/{}_{}_UTC.wav",
                date_dirs(time),
                rng.uuid(),
                file_stamp(time)
            );
            Call {
                source: "s3.amazonaws.com",
                name: "GetObject",
                request: obj! {
                    "bucketName" => bucket.as_str(),
                    "Host" => format!("{bucket}.s3.{region}.amazonaws.com"),
                    "key" => key.as_str(),
                },
                additional: Some(obj! {
                    "SignatureVersion" => "SigV4",
                    "CipherSuite" => TLS13,
                    "bytesTransferredIn" => 0_i64,
                    "AuthenticationMethod" => "AuthHeader",
                    "bytesTransferredOut" => i64::try_from(rng.range(40_000, 900_000)).expect("small"),
                }),
                resources: Some(arr![
                    obj! {"type" => "AWS::S3::Object", "ARN" => format!("arn:aws:s3:::{bucket}/{key}")},
                    obj! {"accountId" => acct, "type" => "AWS::S3::Bucket", "ARN" => format!("arn:aws:s3:::{bucket}")},
                ]),
                data_event: true,
                tls: Some(tls(format!("{bucket}.s3.{region}.amazonaws.com"))),
                ..base(rng)
            }
        }
        Noise::StsAssumeRole => {
            let role = format!("arn:aws:iam::{acct}:role/service-role/ContactFlowLookupRole");
            Call {
                identity: obj! {"type" => "AWSService", "invokedBy" => "lambda.amazonaws.com"},
                source: "sts.amazonaws.com",
                name: "AssumeRole",
                ip: "lambda.amazonaws.com".into(),
                agent: "lambda.amazonaws.com".into(),
                request: obj! {"roleArn" => role.as_str(), "roleSessionName" => "contact-flow-lookup"},
                response: obj! {
                    "credentials" => obj! {
                        "accessKeyId" => format!("ASIA{}", rng.upper(16)),
                        "expiration" => iso(time + 12 * HOUR),
                    },
                    "assumedRoleUser" => obj! {
                        "assumedRoleId" => "AROAR4KXQ2ZB7LAMBDA01:contact-flow-lookup",
                        "arn" => format!("arn:aws:sts::{acct}:assumed-role/ContactFlowLookupRole/contact-flow-lookup"),
                    },
                },
                resources: Some(arr![
                    obj! {"accountId" => acct, "type" => "AWS::IAM::Role", "ARN" => role}
                ]),
                ..base(rng)
            }
        }
        Noise::Ec2DescribeInstances => {
            let instance = format!("i-0{}", rng.hex(16));
            Call {
                identity: Session {
                    account: acct,
                    role: "ReportingInstanceRole",
                    role_id: "AROAR4KXQ2ZB7EC2REP01",
                    path: "",
                    name: &instance,
                    invoked_by: None,
                    time,
                }
                .identity(rng),
                source: "ec2.amazonaws.com",
                name: "DescribeInstances",
                agent: "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.156.0".into(),
                request: obj! {"instancesSet" => obj! {}, "filterSet" => obj! {}},
                tls: Some(tls(host("ec2"))),
                ..base(rng)
            }
        }
        Noise::KmsDecrypt => Call {
            source: "kms.amazonaws.com",
            name: "Decrypt",
            request: obj! {
                "encryptionAlgorithm" => "SYMMETRIC_DEFAULT",
                "encryptionContext" => obj! {"aws:lambda:FunctionArn" => function.as_str()},
            },
            resources: Some(arr![obj! {
                "accountId" => acct,
                "type" => "AWS::KMS::Key",
                "ARN" => format!("arn:aws:kms:{region}:{acct}:key/0d6f3b2a-5c1e-4f7a-9b8d-2e4c6a8f0b1d"),
            }]),
            tls: Some(tls(host("kms"))),
            ..base(rng)
        },
        // Connect invoking a contact-flow Lambda: the text mentions connect.amazonaws.com,
        // but the event source is Lambda.
        Noise::LambdaInvoke => Call {
            identity: obj! {"type" => "AWSService", "invokedBy" => CONNECT},
            source: "lambda.amazonaws.com",
            name: "Invoke",
            ip: CONNECT.into(),
            agent: CONNECT.into(),
            request: obj! {"functionName" => function.as_str(), "sourceArn" => instance_arn(region, acct, account.instance)},
            resources: Some(arr![
                obj! {"accountId" => acct, "type" => "AWS::Lambda::Function", "ARN" => function.as_str()}
            ]),
            read_only: false,
            data_event: true,
            ..base(rng)
        },
        Noise::GetContactAttributes => Call {
            source: CONNECT,
            name: "GetContactAttributes",
            request: obj! {"InitialContactId" => rng.uuid(), "InstanceId" => account.instance},
            tls: Some(tls(host("connect"))),
            ..base(rng)
        },
        Noise::DescribeUser => {
            let (suffix, role_id) = account.connect_role;
            let admin = *rng.pick(account.admins);
            Call {
                identity: Session {
                    account: acct,
                    role: &format!("AWSServiceRoleForAmazonConnect_{suffix}"),
                    role_id,
                    path: "aws-service-role/connect.amazonaws.com/",
                    name: admin,
                    invoked_by: Some(CONNECT),
                    time,
                }
                .identity(rng),
                source: CONNECT,
                name: "DescribeUser",
                ip: CONNECT.into(),
                agent: CONNECT.into(),
                request: obj! {"UserId" => *rng.pick(account.users), "InstanceId" => account.instance},
                ..base(rng)
            }
        }
        Noise::ListUsers => Call {
            identity: Session {
                account: acct,
                role: "connect-audit-snapshot",
                role_id: "AROAR4KXQ2ZB7SNAPSH01",
                path: "",
                name: "connect-audit-snapshot",
                invoked_by: None,
                time,
            }
            .identity(rng),
            source: CONNECT,
            name: "ListUsers",
            agent: "aws-sdk-rust/1.3.3 os/linux lang/rust/1.95.0".into(),
            request: obj! {"InstanceId" => account.instance, "MaxResults" => 1000_i64},
            tls: Some(tls(host("connect"))),
            ..base(rng)
        },
    };
    call.record(rng)
}

// ---------------------------------------------------------------------------------------------
// Snapshot

/// A user of the snapshot: id, username, instance, last modified, first and last seen,
/// deleted.
type SnapshotUser = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

/// When the last snapshot ran: anything created after it is known only from the trail.
const LAST_SNAPSHOT: &str = "2024-05-07T00:05:00Z";

#[rustfmt::skip]
const USERS: &[SnapshotUser] = &[
    (ALICE, "alice.admin", INSTANCE_TOKYO, "2024-03-11T02:00:41Z", "2024-03-11T03:05:00Z", LAST_SNAPSHOT, false),
    (BOB, "bob.supervisor", INSTANCE_TOKYO, "2024-03-11T02:04:19Z", "2024-03-11T03:05:00Z", LAST_SNAPSHOT, false),
    (KENJI, "kenji.tanaka", INSTANCE_TOKYO, "2024-05-06T00:40:12Z", "2024-04-01T00:05:00Z", LAST_SNAPSHOT, false),
    (YUKI, "yuki.sato", INSTANCE_TOKYO, "2024-05-02T04:33:10Z", "2024-04-01T00:05:00Z", LAST_SNAPSHOT, false),
    (HARUTO, "haruto.suzuki", INSTANCE_TOKYO, "2024-05-02T07:20:05Z", "2024-04-01T00:05:00Z", LAST_SNAPSHOT, false),
    (MEI, "mei.takahashi", INSTANCE_TOKYO, "2024-05-02T09:05:52Z", "2024-04-08T00:05:00Z", LAST_SNAPSHOT, false),
    (SORA, "sora.ito", INSTANCE_TOKYO, "2024-05-04T03:02:55Z", "2024-04-15T00:05:00Z", LAST_SNAPSHOT, false),
    (RIKO, "riko.yamamoto", INSTANCE_TOKYO, "2024-05-06T07:45:30Z", "2024-04-22T00:05:00Z", LAST_SNAPSHOT, false),
    (DAIKI, "daiki.kobayashi", INSTANCE_TOKYO, "2024-04-22T06:12:09Z", "2024-04-23T00:05:00Z", LAST_SNAPSHOT, false),
    (CAROL, "carol.admin", INSTANCE_VIRGINIA, "2024-02-20T15:30:00Z", "2024-03-11T03:05:00Z", LAST_SNAPSHOT, false),
    (MARIA, "maria.garcia", INSTANCE_VIRGINIA, "2024-05-02T14:00:21Z", "2024-03-11T03:05:00Z", LAST_SNAPSHOT, false),
    (LI_WEI, "li.wei", INSTANCE_VIRGINIA, "2024-04-02T18:44:03Z", "2024-03-11T03:05:00Z", "2024-05-05T00:05:00Z", true),
    (JAMES, "james.smith", INSTANCE_VIRGINIA, "2024-05-04T15:31:09Z", "2024-04-15T00:05:00Z", LAST_SNAPSHOT, false),
];

/// (folder, ARN resource type, id, name, instance) of the profiles and groups.
#[rustfmt::skip]
const NAMED: &[(&str, &str, &str, &str, &str)] = &[
    ("security-profiles", "security-profile", SP_ADMIN, "Admin", INSTANCE_TOKYO),
    ("security-profiles", "security-profile", SP_AGENT, "Agent", INSTANCE_TOKYO),
    ("security-profiles", "security-profile", SP_MANAGER, "CallCenterManager", INSTANCE_TOKYO),
    ("security-profiles", "security-profile", SP_QA, "QualityAnalyst", INSTANCE_TOKYO),
    ("security-profiles", "security-profile", SP_VA_AGENT, "Agent", INSTANCE_VIRGINIA),
    ("routing-profiles", "routing-profile", RP_BASIC, "Basic Routing Profile", INSTANCE_TOKYO),
    ("routing-profiles", "routing-profile", RP_SUPPORT, "Tier 1 Support", INSTANCE_TOKYO),
    ("routing-profiles", "routing-profile", RP_SALES, "Outbound Sales", INSTANCE_TOKYO),
    ("routing-profiles", "routing-profile", RP_VA_SUPPORT, "US Support", INSTANCE_VIRGINIA),
    ("hierarchy-groups", "agent-group", HG_JAPAN, "Japan", INSTANCE_TOKYO),
    ("hierarchy-groups", "agent-group", HG_TOKYO, "Tokyo", INSTANCE_TOKYO),
    ("hierarchy-groups", "agent-group", HG_TOKYO_FLOOR2, "Tokyo Floor 2", INSTANCE_TOKYO),
    ("hierarchy-groups", "agent-group", HG_VA, "Virginia Support", INSTANCE_VIRGINIA),
];

fn instance_place(instance: &str) -> (&'static str, &'static str) {
    if instance == INSTANCE_TOKYO {
        (REGION_TOKYO, ACCOUNT_TOKYO)
    } else {
        (REGION_VIRGINIA, ACCOUNT_VIRGINIA)
    }
}

/// The snapshot store: one JSON object on one line per file, as the snapshot crate writes it.
fn snapshot() -> Vec<ExampleFile> {
    let mut files = Vec::new();
    for &(id, username, instance, modified, first, last, deleted) in USERS {
        let (region, account) = instance_place(instance);
        let domain = if instance == INSTANCE_TOKYO {
            "example.co.jp"
        } else {
            "example.com"
        };
        let doc = obj! {
            "Arn" => agent_arn(region, account, instance, id),
            "Id" => id,
            "Username" => username,
            "InstanceId" => instance,
            "LastModifiedTime" => modified,
            "Email" => format!("{username}@{domain}"),
            "FirstSeen" => first,
            "LastSeen" => last,
            "Deleted" => deleted,
        };
        files.push(ExampleFile {
            path: format!("snapshot/users/{id}.json"),
            bytes: format!("{}\n", doc.to_text()).into_bytes(),
        });
    }
    for &(folder, kind, id, name, instance) in NAMED {
        let (region, account) = instance_place(instance);
        let doc = obj! {
            "Arn" => format!("{}/{kind}/{id}", instance_arn(region, account, instance)),
            "Id" => id,
            "Name" => name,
            "InstanceId" => instance,
        };
        files.push(ExampleFile {
            path: format!("snapshot/{folder}/{id}.json"),
            bytes: format!("{}\n", doc.to_text()).into_bytes(),
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for text in [
            "2024-04-30T23:59:59Z",
            "2024-05-01T00:00:00Z",
            "2024-05-08T00:00:00Z",
            "2024-05-07T23:58:00Z",
        ] {
            assert_eq!(iso(at(text)), text);
        }
        assert_eq!(file_stamp(at("2024-05-02T01:05:33Z")), "20240502T0105Z");
        assert_eq!(date_dirs(at("2024-05-02T01:05:33Z")), "2024/05/02");
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(build(), build());
    }

    #[test]
    fn kebab_names_cli_commands() {
        assert_eq!(
            kebab("UpdateUserSecurityProfiles"),
            "update-user-security-profiles"
        );
    }

    #[test]
    fn uuids_are_uuid_shaped() {
        let mut rng = Rng(1);
        for _ in 0..100 {
            let u = rng.uuid();
            assert_eq!(u.len(), 36, "{u}");
            assert_eq!(&u[14..15], "4");
        }
    }
}
