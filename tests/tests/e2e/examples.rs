//! The committed `examples/`: not stale, small, valid as config, and what the embedded engine
//! makes of them, event by event and as a whole (the golden file
//! `tests/fixtures/golden/examples.jsonl`).
//!
//! After an intended change of the generator: `cargo run -p connect-audit-tests --bin
//! make-examples`. After an intended change of the engine's output:
//! `UPDATE_GOLDEN=1 cargo test -p connect-audit-tests --test e2e examples::` and review the
//! diff of the golden file.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use connect_audit_config::{ExporterSpec, Settings};
use connect_audit_core::ids::is_uuid;
use connect_audit_core::record::COLUMNS;
use connect_audit_core::store::load_directory_blocking;
use connect_audit_core::{
    ActorKind, AuditRecord, Category, ChangeBasis, EventSelection, Location, NameSource, Origin,
    Store, TargetKind,
};
use connect_audit_query::local::{ScanOptions, ScanSummary, TrailScanner};
use connect_audit_query::stage::ChangeStage;
use connect_audit_tests::events as ev;
use connect_audit_tests::ids;
use figment::Figment;
use figment::providers::{Format, Toml};
use jiff::Timestamp;
use serde_json::Value;

use super::helpers::window;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/golden/examples.jsonl"
);

fn examples() -> PathBuf {
    PathBuf::from(EXAMPLES)
}

/// Every file under `root`, as sorted `/`-separated relative paths.
fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut text)
        .ok()?;
    Some(text)
}

/// Trail files (not digests) and their decompressed text.
fn trail_texts() -> Vec<(String, String)> {
    let root = examples().join("trail");
    files_under(&root)
        .into_iter()
        .filter(|p| p.contains("/CloudTrail/"))
        .map(|p| {
            let bytes = fs::read(root.join(&p)).unwrap();
            let text = String::from_utf8(gunzip(&bytes).expect("gzip")).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn examples_are_not_stale() {
    let tmp = tempfile::tempdir().unwrap();
    connect_audit_tests::generate(tmp.path()).unwrap();
    let committed = examples();
    let generated = files_under(tmp.path());
    let mut problems = Vec::new();
    for rel in &generated {
        let new = fs::read(tmp.path().join(rel)).unwrap();
        match fs::read(committed.join(rel)) {
            Err(_) => problems.push(format!("missing:   {rel}")),
            Ok(old) if old != new => {
                let same_json = Path::new(rel).extension().is_some_and(|e| e == "gz")
                    && gunzip(&old).is_some()
                    && gunzip(&old) == gunzip(&new);
                let note = if same_json {
                    " (same JSON, only the gzip bytes differ: flate2 or zlib-rs changed?)"
                } else {
                    ""
                };
                problems.push(format!("differs:   {rel}{note}"));
            }
            Ok(_) => {}
        }
    }
    let generated: BTreeSet<&String> = generated.iter().collect();
    for rel in files_under(&committed) {
        let owned = connect_audit_tests::GENERATED_DIRS
            .iter()
            .any(|d| rel.starts_with(&format!("{d}/")));
        if owned && !generated.contains(&rel) {
            problems.push(format!("leftover:  {rel}"));
        }
    }
    assert!(
        problems.is_empty(),
        "examples/ is stale; run `cargo run -p connect-audit-tests --bin make-examples` and \
         commit examples/:\n{}",
        problems.join("\n")
    );
}

#[test]
fn examples_are_small_and_the_snapshot_is_well_formed() {
    let root = examples();
    let total: u64 = files_under(&root)
        .iter()
        .map(|p| fs::metadata(root.join(p)).unwrap().len())
        .sum();
    assert!(
        total < 300_000,
        "examples/ holds {total} bytes; keep it under ~300 KB"
    );
    let snapshot = files_under(&root.join("snapshot"));
    assert!(snapshot.len() > 20, "{snapshot:?}");
    for rel in snapshot {
        let text = fs::read_to_string(root.join("snapshot").join(&rel)).unwrap();
        assert_eq!(text.lines().count(), 1, "{rel}: one object on one line");
        let v: Value = serde_json::from_str(&text).unwrap();
        let id = v["Id"].as_str().unwrap();
        assert!(is_uuid(id) && id == id.to_ascii_lowercase(), "{rel}: {id}");
        assert!(
            rel.ends_with(&format!("/{id}.json")),
            "{rel} is named after its Id"
        );
        let instance = v["InstanceId"].as_str().unwrap();
        assert!([ids::INSTANCE_TOKYO, ids::INSTANCE_VIRGINIA].contains(&instance));
        assert!(v["Arn"].as_str().unwrap().ends_with(id));
    }
    let trail_only = root.join(format!("snapshot/users/{}.json", ids::TRAIL_USER));
    assert!(
        !trail_only.exists(),
        "the trail-only user must not be in the snapshot"
    );
}

#[test]
fn demo_config_is_valid() {
    let path = examples().join("demo.toml");
    let figment = Figment::from(Toml::file_exact(&path));
    let settings: Settings = figment.extract().unwrap();
    let report = settings
        .validate(&figment, "2024-06-01T00:00:00Z".parse().unwrap())
        .unwrap();
    assert_eq!(report.trail, Location::Local("examples/trail".into()));
    assert_eq!(
        report.snapshot,
        Some(Location::Local("examples/snapshot".into()))
    );
    assert_eq!(report.window, window());
    let kinds: Vec<&str> = settings.exporters.iter().map(ExporterSpec::kind).collect();
    assert_eq!(kinds, ["csv", "jsonl", "parquet", "html"]);
}

// ---------------------------------------------------------------------------------------------
// The embedded engine over examples/

fn scan_with(events: EventSelection, threads: Option<usize>) -> (Vec<AuditRecord>, ScanSummary) {
    let root = examples();
    let directory = load_directory_blocking(&Store::local(root.join("snapshot"))).unwrap();
    let mut options = ScanOptions::new(window(), events);
    if let Some(threads) = threads {
        options.threads = threads;
    }
    // Through the change stage, as the binary runs it: the golden file holds its columns too.
    let scanner = TrailScanner::new(Store::local(root.join("trail")), directory.clone(), options);
    let mut stage = ChangeStage::new(Vec::new(), directory);
    let summary = scanner
        .scan(&mut stage)
        .unwrap_or_else(|e| panic!("scan of examples/ failed: {e}"));
    let mut records = stage.finish().unwrap();
    records.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    (records, summary)
}

fn scan_defaults() -> (Vec<AuditRecord>, ScanSummary) {
    scan_with(EventSelection::defaults(), None)
}

fn scan_all() -> (Vec<AuditRecord>, ScanSummary) {
    scan_with(EventSelection::parse(&["all"]).unwrap(), None)
}

fn find<'a>(records: &'a [AuditRecord], event_id: &str) -> &'a AuditRecord {
    let mut hits = records.iter().filter(|r| r.event_id == event_id);
    let hit = hits
        .next()
        .unwrap_or_else(|| panic!("event {event_id} is missing from the records"));
    assert!(hits.next().is_none(), "event {event_id} appears twice");
    hit
}

fn absent(records: &[AuditRecord], event_id: &str, why: &str) {
    assert!(
        records.iter().all(|r| r.event_id != event_id),
        "event {event_id} must not be reported: {why}"
    );
}

/// The fields the golden checks look at, to compare with one `assert_eq!`.
#[derive(Debug, PartialEq, Eq)]
struct Names<'a> {
    actor: (ActorKind, Option<&'a str>, Option<&'a str>),
    target: (TargetKind, Option<&'a str>, Option<&'a str>),
    name_source: NameSource,
    origin: Origin,
}

fn names(r: &AuditRecord) -> Names<'_> {
    Names {
        actor: (r.actor_kind, r.actor_id.as_deref(), r.actor_name.as_deref()),
        target: (
            r.target_kind,
            r.target_id.as_deref(),
            r.target_name.as_deref(),
        ),
        name_source: r.name_source,
        origin: r.origin,
    }
}

#[test]
fn every_actor_kind_is_recognised() {
    let (records, _) = scan_defaults();
    let r = find(&records, ev::CREATE_SECURITY_PROFILE);
    assert_eq!(
        (
            r.actor_kind,
            r.actor_id.as_deref(),
            r.actor_name.as_deref(),
            r.origin
        ),
        (
            ActorKind::ConnectUser,
            Some(ids::ALICE),
            Some("alice.admin"),
            Origin::Console
        ),
        "admin-website user: the role session name is the Connect user id"
    );

    let r = find(&records, ev::LONG_SESSION_IDENTITY_INFO);
    assert_eq!(
        names(r),
        Names {
            actor: (
                ActorKind::ConnectUser,
                Some(ids::BOB),
                Some("bob.supervisor")
            ),
            target: (TargetKind::User, Some(ids::MEI), Some("mei.takahashi")),
            name_source: NameSource::Snapshot,
            origin: Origin::Console,
        },
        "a session name of `<uuid>@<email>` cut to 64 characters still names the admin"
    );
    let arn = r.actor_arn.as_deref().unwrap();
    assert!(
        arn.ends_with(&format!("/{}@bob.supervisor@example-call", ids::BOB)),
        "{arn}"
    );

    let r = find(&records, ev::SSO_USER_SECURITY_PROFILES);
    assert_eq!(
        (
            r.actor_kind,
            r.actor_name.as_deref(),
            r.origin,
            r.name_source
        ),
        (
            ActorKind::Iam,
            Some("admin@example.com"),
            Origin::Api,
            NameSource::Snapshot
        ),
        "IAM Identity Center session through the CLI"
    );
    assert!(
        r.actor_id
            .as_deref()
            .unwrap()
            .ends_with(":admin@example.com")
    );
    assert!(r.user_agent.as_deref().unwrap().starts_with("aws-cli/"));

    let r = find(&records, ev::IAM_USER_HIERARCHY);
    assert_eq!(
        (
            r.actor_kind,
            r.actor_name.as_deref(),
            r.actor_arn.as_deref(),
            r.origin
        ),
        (
            ActorKind::Iam,
            Some("ops-automation"),
            Some("arn:aws:iam::111122223333:user/ops-automation"),
            Origin::Api
        ),
        "IAM user with access keys"
    );

    let r = find(&records, ev::SYNC_DELETE);
    assert_eq!(
        names(r),
        Names {
            actor: (
                ActorKind::Service,
                Some("ResourceSynchronization"),
                Some("synchronization.connect.amazonaws.com")
            ),
            target: (TargetKind::User, Some(ids::LI_WEI), Some("li.wei")),
            name_source: NameSource::Snapshot,
            origin: Origin::Api,
        },
        "Global Resiliency sync role; the deleted user is still named by the snapshot"
    );

    let r = find(&records, ev::UNKNOWN_ADMIN);
    assert_eq!(
        names(r),
        Names {
            actor: (ActorKind::ConnectUser, Some(ids::UNKNOWN_ADMIN), None),
            target: (TargetKind::User, Some(ids::KENJI), Some("kenji.tanaka")),
            name_source: NameSource::Unresolved,
            origin: Origin::Console,
        },
        "an admin no snapshot knows stays unresolved, and says so"
    );
}

/// (event id, event name, category, target kind, target id, target name, name source).
type Expected<'a> = (
    &'a str,
    &'a str,
    Category,
    TargetKind,
    Option<&'a str>,
    Option<&'a str>,
    NameSource,
);

#[test]
fn every_target_kind_is_recognised() {
    use NameSource::{Snapshot, Trail};
    use TargetKind as K;
    let (records, _) = scan_defaults();
    let queue_arn = format!(
        "{}/queue/{}",
        ids::instance_arn(ids::REGION_TOKYO, ids::ACCOUNT_TOKYO, ids::INSTANCE_TOKYO),
        ids::QUEUE_BILLING
    );
    #[rustfmt::skip]
    let expected: &[Expected<'_>] = &[
        (ev::SSO_USER_SECURITY_PROFILES, "UpdateUserSecurityProfiles", Category::Permissions, K::User, Some(ids::KENJI), Some("kenji.tanaka"), Snapshot),
        (ev::ROUTING_PROFILE_ARN_IDS, "UpdateUserRoutingProfile", Category::Permissions, K::User, Some(ids::YUKI), Some("yuki.sato"), Snapshot),
        (ev::IAM_USER_HIERARCHY, "UpdateUserHierarchy", Category::Permissions, K::User, Some(ids::HARUTO), Some("haruto.suzuki"), Snapshot),
        (ev::LONG_SESSION_IDENTITY_INFO, "UpdateUserIdentityInfo", Category::User, K::User, Some(ids::MEI), Some("mei.takahashi"), Snapshot),
        (ev::PHONE_CONFIG, "UpdateUserPhoneConfig", Category::User, K::User, Some(ids::RIKO), Some("riko.yamamoto"), Snapshot),
        (ev::DELETE_TRAIL_USER, "DeleteUser", Category::User, K::User, Some(ids::TRAIL_USER), Some(ids::TRAIL_USER_NAME), Trail),
        (ev::CREATE_TRAIL_USER, "CreateUser", Category::User, K::User, Some(ids::TRAIL_USER), Some(ids::TRAIL_USER_NAME), Trail),
        (ev::CREATE_HIERARCHY_GROUP, "CreateUserHierarchyGroup", Category::Hierarchy, K::HierarchyGroup, Some(ids::HG_OSAKA), Some("Osaka Team"), Trail),
        (ev::RENAME_HIERARCHY_GROUP, "UpdateUserHierarchyGroupName", Category::Hierarchy, K::HierarchyGroup, Some(ids::HG_TOKYO_FLOOR2), Some("Tokyo Floor 2"), Snapshot),
        (ev::HIERARCHY_STRUCTURE, "UpdateUserHierarchyStructure", Category::Hierarchy, K::None, None, None, Snapshot),
        (ev::CREATE_SECURITY_PROFILE, "CreateSecurityProfile", Category::SecurityProfile, K::SecurityProfile, Some(ids::SP_QA), Some("QualityAnalyst"), Snapshot),
        (ev::UPDATE_SECURITY_PROFILE, "UpdateSecurityProfile", Category::SecurityProfile, K::SecurityProfile, Some(ids::SP_AGENT), Some("Agent"), Snapshot),
        (ev::ROUTING_PROFILE_QUEUES, "UpdateRoutingProfileQueues", Category::RoutingProfile, K::RoutingProfile, Some(ids::RP_SUPPORT), Some("Tier 1 Support"), Snapshot),
        (ev::TAG_AGENT, "TagResource", Category::Tags, K::User, Some(ids::TRAIL_USER), Some(ids::TRAIL_USER_NAME), Trail),
        (ev::TAG_QUEUE, "TagResource", Category::Tags, K::Resource, Some(queue_arn.as_str()), None, Trail),
        (ev::ENCODED_INSTANCE, "UpdateUserHierarchy", Category::Permissions, K::User, Some(ids::SORA), Some("sora.ito"), Snapshot),
        (ev::ENCODED_USER_ARN, "UpdateUserRoutingProfile", Category::Permissions, K::User, Some(ids::RIKO), Some("riko.yamamoto"), Snapshot),
        (ev::ENCODED_TAG_AGENT, "TagResource", Category::Tags, K::User, Some(ids::RIKO), Some("riko.yamamoto"), Snapshot),
        (ev::ENCODED_ENTITY_ARN, "AssociateSecurityProfiles", Category::SecurityProfile, K::User, Some(ids::RIKO), Some("riko.yamamoto"), Snapshot),
        (ev::DISASSOCIATE_WORKSPACE, "DisassociateWorkspace", Category::Permissions, K::User, Some(ids::MEI), Some("mei.takahashi"), Snapshot),
        (ev::WORKSPACE_VISIBILITY, "UpdateWorkspaceVisibility", Category::Permissions, K::Resource, Some(ids::WORKSPACE), None, Snapshot),
        (ev::DELETE_WORKSPACE, "DeleteWorkspace", Category::Permissions, K::Resource, Some(ids::WORKSPACE), None, Snapshot),
    ];
    for &(id, event_name, category, kind, target_id, target_name, source) in expected {
        let r = find(&records, id);
        assert_eq!(
            (
                r.event_name.as_str(),
                r.category,
                r.target_kind,
                r.target_id.as_deref(),
                r.target_name.as_deref(),
                r.name_source
            ),
            (event_name, category, kind, target_id, target_name, source),
            "event {id} ({event_name})"
        );
    }
    let kinds: BTreeSet<TargetKind> = records.iter().map(|r| r.target_kind).collect();
    assert_eq!(
        kinds,
        TargetKind::ALL.iter().copied().collect(),
        "every target kind occurs"
    );
    let actors: BTreeSet<ActorKind> = records.iter().map(|r| r.actor_kind).collect();
    assert_eq!(
        actors,
        ActorKind::ALL.iter().copied().collect(),
        "every actor kind occurs"
    );
}

#[test]
fn a_workspace_assigned_to_several_targets_gives_a_named_row_for_each() {
    let (records, _) = scan_defaults();
    let rows: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.event_id == ev::ASSOCIATE_WORKSPACE)
        .collect();
    let got: Vec<(u32, TargetKind, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.target_index,
                r.target_kind,
                r.target_id.as_deref(),
                r.target_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, TargetKind::User, Some(ids::KENJI), Some("kenji.tanaka")),
            (1, TargetKind::User, Some(ids::YUKI), Some("yuki.sato")),
            (
                2,
                TargetKind::RoutingProfile,
                Some(ids::RP_SALES),
                Some("Outbound Sales")
            ),
            (
                3,
                TargetKind::User,
                Some(ids::HARUTO),
                Some("haruto.suzuki")
            ),
            (4, TargetKind::User, Some(ids::MEI), Some("mei.takahashi")),
        ]
    );
    for r in &rows {
        assert_eq!(r.event_name, "AssociateWorkspace");
        assert_eq!(r.category, Category::Permissions);
        assert_eq!(r.actor_name.as_deref(), Some("alice.admin"));
        assert_eq!(r.instance_id.as_deref(), Some(ids::INSTANCE_TOKYO));
    }
}

#[test]
fn opt_in_calls_of_the_model_are_audited_with_their_targets() {
    let (records, _) = scan_all();
    let r = find(&records, ev::FEDERATION_TOKEN);
    assert_eq!(
        (
            r.category,
            r.target_kind,
            r.target_id.as_deref(),
            r.target_name.as_deref()
        ),
        (
            Category::SignIn,
            TargetKind::User,
            Some(ids::SORA),
            Some("sora.ito")
        )
    );
    let response = r.response_elements.as_deref().unwrap();
    for secret in [
        ids::FEDERATION_ACCESS_TOKEN,
        ids::FEDERATION_REFRESH_TOKEN,
        ids::FEDERATION_URL_TOKEN,
    ] {
        assert!(!response.contains(secret), "{response}");
    }
    for (id, name, target) in [
        (
            ev::CREATE_TRAFFIC_GROUP,
            "CreateTrafficDistributionGroup",
            Some(ids::TRAFFIC_GROUP),
        ),
        (
            ev::UPDATE_TRAFFIC,
            "UpdateTrafficDistribution",
            Some(ids::TRAFFIC_GROUP),
        ),
        (
            ev::DELETE_TRAFFIC_GROUP,
            "DeleteTrafficDistributionGroup",
            Some(ids::TRAFFIC_GROUP),
        ),
        (ev::DISASSOCIATE_ORIGIN, "DisassociateApprovedOrigin", None),
        (ev::DISASSOCIATE_KEY, "DisassociateSecurityKey", None),
        (ev::CROSS_REGION_ROUTING, "UpdateCrossRegionRouting", None),
    ] {
        let r = find(&records, id);
        assert_eq!(
            (r.event_name.as_str(), r.category, r.target_id.as_deref()),
            (name, Category::Instance, target),
            "{id}"
        );
        let kind = if target.is_some() {
            TargetKind::Resource
        } else {
            TargetKind::None
        };
        assert_eq!(r.target_kind, kind, "{id}");
    }
    let r = find(&records, ev::CREATE_AUTH_CODE);
    assert_eq!(
        (r.category, r.target_kind),
        (Category::SignIn, TargetKind::None)
    );
    let response = r.response_elements.as_deref().unwrap();
    assert!(!response.contains(ids::AUTH_CODE), "{response}");
    assert!(response.contains("SessionId"), "{response}");
}

#[test]
fn ids_given_as_arns_are_normalised() {
    let (records, _) = scan_all();
    let r = find(&records, ev::ROUTING_PROFILE_ARN_IDS);
    assert_eq!(
        (r.instance_id.as_deref(), r.target_id.as_deref()),
        (Some(ids::INSTANCE_TOKYO), Some(ids::YUKI))
    );
    let r = find(&records, ev::SYNC_DELETE);
    assert_eq!(
        (r.instance_id.as_deref(), r.target_id.as_deref()),
        (Some(ids::INSTANCE_VIRGINIA), Some(ids::LI_WEI))
    );
    let r = find(&records, ev::TAG_AGENT);
    assert_eq!(
        r.instance_id.as_deref(),
        Some(ids::INSTANCE_TOKYO),
        "TagResource has no InstanceId: it comes from the resource ARN"
    );
    for id in [
        ev::ENCODED_INSTANCE,
        ev::ENCODED_USER_ARN,
        ev::ENCODED_TAG_AGENT,
        ev::ENCODED_ENTITY_ARN,
    ] {
        let r = find(&records, id);
        assert_eq!(
            r.instance_id.as_deref(),
            Some(ids::INSTANCE_TOKYO),
            "{id}: percent-encoded ids are decoded"
        );
        assert!(
            r.request_parameters.as_deref().unwrap().contains("%3A"),
            "{id}: the request is kept as recorded"
        );
    }
    for r in &records {
        // Traffic distribution groups belong to no one instance, and these calls name none.
        if [
            "UpdateTrafficDistribution",
            "DeleteTrafficDistributionGroup",
        ]
        .contains(&r.event_name.as_str())
        {
            assert_eq!(r.instance_id, None, "{}", r.event_id);
            continue;
        }
        let instance = r
            .instance_id
            .as_deref()
            .unwrap_or_else(|| panic!("{}: no instance", r.event_id));
        assert!(is_uuid(instance), "{}: instance_id {instance}", r.event_id);
        if r.target_kind != TargetKind::Resource
            && let Some(target) = &r.target_id
        {
            assert!(is_uuid(target), "{}: target_id {target}", r.event_id);
        }
        if r.actor_kind == ActorKind::ConnectUser {
            assert!(is_uuid(r.actor_id.as_deref().unwrap()), "{}", r.event_id);
        }
    }
}

#[test]
fn create_user_names_a_user_the_snapshot_never_saw() {
    let (records, _) = scan_defaults();
    let created = find(&records, ev::CREATE_TRAIL_USER);
    assert_eq!(
        names(created),
        Names {
            actor: (
                ActorKind::ConnectUser,
                Some(ids::ALICE),
                Some("alice.admin")
            ),
            target: (
                TargetKind::User,
                Some(ids::TRAIL_USER),
                Some(ids::TRAIL_USER_NAME)
            ),
            name_source: NameSource::Trail,
            origin: Origin::Console,
        }
    );
    let params = created.request_parameters.as_deref().unwrap();
    assert!(params.contains(ids::TRAIL_USER_NAME), "{params}");
    assert!(
        created
            .response_elements
            .as_deref()
            .unwrap()
            .contains(ids::TRAIL_USER),
        "the response carries the new UserId"
    );
    for later in [
        ev::TRAIL_USER_SECURITY_PROFILES,
        ev::TAG_AGENT,
        ev::DELETE_TRAIL_USER,
    ] {
        let r = find(&records, later);
        assert_eq!(
            (
                r.target_id.as_deref(),
                r.target_name.as_deref(),
                r.name_source
            ),
            (
                Some(ids::TRAIL_USER),
                Some(ids::TRAIL_USER_NAME),
                NameSource::Trail
            ),
            "event {later} about the trail-only user"
        );
    }
    let deleted = find(&records, ev::DELETE_TRAIL_USER);
    assert_eq!(
        (deleted.actor_id.as_deref(), deleted.actor_name.as_deref()),
        (Some(ids::BOB), Some("bob.supervisor"))
    );
}

#[test]
fn duplicate_delivery_is_reported_once() {
    let in_files = trail_texts()
        .iter()
        .filter(|(_, text)| text.contains(ev::DUPLICATE))
        .count();
    assert_eq!(in_files, 2, "the fixture delivers the event in two files");
    let (records, summary) = scan_defaults();
    find(&records, ev::DUPLICATE);
    assert!(summary.duplicates >= 1, "{summary:?}");
    let unique: BTreeSet<(&str, u32)> = records
        .iter()
        .map(|r| (r.event_id.as_str(), r.target_index))
        .collect();
    assert_eq!(unique.len(), records.len(), "no row key twice");
}

#[test]
fn failed_call_is_kept_with_its_error() {
    let (records, _) = scan_defaults();
    let r = find(&records, ev::ACCESS_DENIED);
    assert_eq!(r.event_name, "UpdateUserSecurityProfiles");
    assert_eq!(r.error_code.as_deref(), Some("AccessDeniedException"));
    let message = r.error_message.as_deref().unwrap();
    assert!(
        message.contains("is not authorized to perform"),
        "{message}"
    );
    assert_eq!(r.response_elements, None);
    assert_eq!(
        (
            r.actor_name.as_deref(),
            r.target_id.as_deref(),
            r.target_name.as_deref()
        ),
        (
            Some("ops-automation"),
            Some(ids::HARUTO),
            Some("haruto.suzuki")
        )
    );
    let failed: Vec<&str> = records
        .iter()
        .filter(|r| r.error_code.is_some())
        .map(|r| r.event_id.as_str())
        .collect();
    assert_eq!(failed, [ev::ACCESS_DENIED], "only the denied call failed");
}

#[test]
fn foreign_iam_create_user_is_not_audited() {
    assert!(
        trail_texts()
            .iter()
            .any(|(_, text)| text.contains(ev::IAM_CREATE_USER)),
        "the fixture holds IAM's CreateUser"
    );
    let (records, _) = scan_all();
    absent(
        &records,
        ev::IAM_CREATE_USER,
        "iam.amazonaws.com is not Connect",
    );
    assert!(
        records
            .iter()
            .all(|r| r.event_name != "GetContactAttributes"),
        "uncatalogued Connect reads are never audited"
    );
}

#[test]
fn digest_files_are_skipped_quietly_and_nothing_is_bad() {
    let digests = files_under(&examples().join("trail"))
        .into_iter()
        .filter(|p| p.contains("/CloudTrail-Digest/"))
        .count();
    assert_eq!(digests, 1, "the fixture has a digest file");
    let (_, summary) = scan_defaults();
    assert!(summary.bad.is_empty(), "bad input: {:#?}", summary.bad);
    assert!(!summary.has_bad_input(), "{summary:?}");
    assert_eq!(summary.files_bad, 0);
    assert_eq!(
        summary.files_found,
        u64::try_from(trail_texts().len()).unwrap(),
        "every log file but the digest is a trail file"
    );
    assert_eq!(
        summary.files_pruned, 0,
        "every file is dated in the window or its slack"
    );
    assert_eq!(summary.files_read, summary.files_found);
}

#[test]
fn organization_trail_account_is_scanned() {
    let (records, _) = scan_defaults();
    let org: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.account_id == ids::ACCOUNT_VIRGINIA)
        .map(|r| r.event_id.as_str())
        .collect();
    assert_eq!(
        org,
        BTreeSet::from([ev::ORG_CONSOLE, ev::ORG_HIERARCHY, ev::SYNC_DELETE])
    );
    let r = find(&records, ev::ORG_CONSOLE);
    assert_eq!(
        (r.region.as_str(), r.instance_id.as_deref()),
        (ids::REGION_VIRGINIA, Some(ids::INSTANCE_VIRGINIA))
    );
    assert_eq!(
        names(r),
        Names {
            actor: (
                ActorKind::ConnectUser,
                Some(ids::CAROL),
                Some("carol.admin")
            ),
            target: (TargetKind::User, Some(ids::MARIA), Some("maria.garcia")),
            name_source: NameSource::Snapshot,
            origin: Origin::Console,
        }
    );
}

#[test]
fn window_edges_follow_event_time_not_delivery_date() {
    let texts = trail_texts();
    let file_of = |id: &str| {
        texts
            .iter()
            .find(|(_, text)| text.contains(id))
            .map_or_else(
                || panic!("{id} is not in the trail"),
                |(path, _)| path.as_str(),
            )
    };
    assert!(file_of(ev::BEFORE_WINDOW).contains("/2024/05/01/"));
    assert!(file_of(ev::LATE_DELIVERY).contains("/2024/05/08/"));
    assert!(file_of(ev::AT_UNTIL).contains("/2024/05/08/"));

    let (records, _) = scan_all();
    absent(
        &records,
        ev::BEFORE_WINDOW,
        "2024-04-30T23:59:59Z is before since",
    );
    absent(&records, ev::AT_UNTIL, "until is exclusive");
    let late = find(&records, ev::LATE_DELIVERY);
    assert_eq!(
        late.event_time,
        "2024-05-07T23:58:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(
        (
            late.target_kind,
            late.target_id.as_deref(),
            late.target_name.as_deref()
        ),
        (TargetKind::User, Some(ids::DAIKI), Some("daiki.kobayashi"))
    );
    let w = window();
    assert!(records.iter().all(|r| w.contains(r.event_time)));
}

#[test]
fn opt_in_events_need_all() {
    let (defaults, _) = scan_defaults();
    absent(&defaults, ev::PUT_USER_STATUS, "agent_status is opt-in");
    absent(&defaults, ev::DESCRIBE_USER, "sign_in is opt-in");
    let (all, _) = scan_all();
    let r = find(&all, ev::PUT_USER_STATUS);
    assert_eq!(
        (
            r.category,
            r.target_kind,
            r.target_id.as_deref(),
            r.target_name.as_deref()
        ),
        (
            Category::AgentStatus,
            TargetKind::User,
            Some(ids::KENJI),
            Some("kenji.tanaka")
        )
    );
    let r = find(&all, ev::DESCRIBE_USER);
    assert_eq!(
        (r.category, r.target_id.as_deref()),
        (Category::SignIn, Some(ids::SORA))
    );
    let default_ids: BTreeSet<&str> = defaults.iter().map(|r| r.event_id.as_str()).collect();
    assert!(
        all.iter()
            .filter(|r| !default_ids.contains(r.event_id.as_str()))
            .all(|r| matches!(
                r.category,
                Category::AgentStatus | Category::SignIn | Category::Instance
            )),
        "`all` adds only opt-in events"
    );
}

#[test]
fn passwords_never_reach_records() {
    let (records, _) = scan_all();
    for r in &records {
        for text in [&r.request_parameters, &r.response_elements]
            .into_iter()
            .flatten()
        {
            assert!(
                !text.to_ascii_lowercase().contains("password"),
                "{}: {text}",
                r.event_id
            );
        }
    }
}

#[test]
fn scope_limits_accounts_regions_and_instances_after_names_are_learned() {
    let scoped = |scope: connect_audit_core::Scope| {
        let root = examples();
        let directory = load_directory_blocking(&Store::local(root.join("snapshot"))).unwrap();
        let mut options = ScanOptions::new(window(), EventSelection::defaults());
        options.scope = scope;
        let scanner =
            TrailScanner::new(Store::local(root.join("trail")), directory.clone(), options);
        let mut stage = ChangeStage::new(Vec::new(), directory);
        scanner.scan(&mut stage).unwrap();
        stage.finish().unwrap()
    };
    let (all, _) = scan_defaults();
    let org = scoped(connect_audit_core::Scope {
        accounts: vec!["444455556666".into()],
        ..Default::default()
    });
    assert!(!org.is_empty());
    assert!(org.iter().all(|r| r.account_id == "444455556666"));
    assert_eq!(
        org.len(),
        all.iter()
            .filter(|r| r.account_id == "444455556666")
            .count()
    );
    let tokyo = scoped(connect_audit_core::Scope {
        regions: vec!["ap-northeast-1".into()],
        instances: vec![ids::INSTANCE_TOKYO.to_owned()],
        ..Default::default()
    });
    assert!(!tokyo.is_empty());
    assert!(
        tokyo.iter().all(|r| r.region == "ap-northeast-1"
            && r.instance_id.as_deref() == Some(ids::INSTANCE_TOKYO))
    );
    assert!(tokyo.len() < all.len());
    // Names learned from events outside the scope still name the rows inside it.
    for r in &tokyo {
        let same = all.iter().find(|a| a.row_key() == r.row_key()).unwrap();
        assert_eq!(r, same);
    }
}

#[test]
fn one_thread_gives_the_same_records() {
    let (many, _) = scan_defaults();
    let (one, summary) = scan_with(EventSelection::defaults(), Some(1));
    assert_eq!(one, many);
    assert_eq!(summary.names_unresolved, 1, "only the unknown admin's row");
}

// ---------------------------------------------------------------------------------------------
// Golden file

/// JSON text with object keys sorted at every depth, so the golden file does not depend on
/// serde_json's `preserve_order` feature being switched on by some crate of the build.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// One record as a JSON line: every column in output order, text or null.
fn golden_line(r: &AuditRecord) -> String {
    let fields: Vec<String> = COLUMNS
        .iter()
        .map(|&column| {
            let value = match r.column(column) {
                None => Value::Null,
                Some(text) if matches!(column, "request_parameters" | "response_elements") => {
                    let parsed: Value = serde_json::from_str(&text).unwrap();
                    Value::String(canonical(&parsed))
                }
                Some(_) if column == "target_index" => Value::from(r.target_index),
                Some(_) if column == "findings" => Value::from(r.findings.clone()),
                Some(text) => Value::String(text),
            };
            format!("{}:{value}", Value::from(column))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[test]
fn golden_records_match_the_committed_jsonl() {
    let (records, _) = scan_defaults();
    let actual: String = records.iter().map(|r| golden_line(r) + "\n").collect();
    let golden = Path::new(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(golden.parent().unwrap()).unwrap();
        fs::write(golden, &actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(golden).unwrap_or_default();
    if expected == actual {
        return;
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples.actual.jsonl");
    fs::write(&scratch, &actual).unwrap();
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    panic!(
        "the records of examples/ differ from {GOLDEN} ({} lines expected, {} got); first \
         difference at line {}:\n  expected: {}\n  actual:   {}\n\
         Compare: diff {GOLDEN} {}\n\
         If the change is intended: UPDATE_GOLDEN=1 cargo test -p connect-audit-tests --test e2e \
         examples::golden and review the diff.",
        e.len(),
        a.len(),
        first + 1,
        e.get(first).unwrap_or(&"<none>"),
        a.get(first).unwrap_or(&"<none>"),
        scratch.display(),
    );
}

/// The change stage over the examples (every event): rows in event-time order, each decoded
/// call in names with where its `before` came from, and the findings where they belong.
#[test]
fn the_change_stage_decodes_the_examples_in_names() {
    let root = examples();
    let directory = load_directory_blocking(&Store::local(root.join("snapshot"))).unwrap();
    let options = ScanOptions::new(window(), EventSelection::parse(&["all"]).unwrap());
    let scanner = TrailScanner::new(Store::local(root.join("trail")), directory.clone(), options);
    let mut stage = ChangeStage::new(Vec::new(), directory);
    scanner.scan(&mut stage).unwrap();
    let records = stage.finish().unwrap();
    let order: Vec<_> = records
        .iter()
        .map(|r| (r.event_time, r.event_id.clone(), r.target_index))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "rows come in event-time order");

    // A user the trail creates: what it was given, then a profile added on top.
    let created = find(&records, ev::CREATE_TRAIL_USER);
    assert_eq!(
        created.change.as_deref(),
        Some("created with Agent; Tier 1 Support; Tokyo")
    );
    assert_eq!(created.change_basis, Some(ChangeBasis::Trail));
    assert_eq!(created.before, None);
    let after: Value = serde_json::from_str(created.after.as_deref().unwrap()).unwrap();
    assert_eq!(after["security_profiles"][0]["name"], "Agent");
    assert_eq!(after["routing_profile"]["name"], "Tier 1 Support");
    assert!(
        !created.after.as_deref().unwrap().contains("Password"),
        "no secret in after"
    );
    let added = find(&records, ev::TRAIL_USER_SECURITY_PROFILES);
    assert_eq!(
        added.change.as_deref(),
        Some("security profiles: +QualityAnalyst (now Agent, QualityAnalyst)")
    );
    assert_eq!(added.change_basis, Some(ChangeBasis::Trail));

    // A call on a user the run knows nothing of: what it set, no guessed difference.
    let sso = find(&records, ev::SSO_USER_SECURITY_PROFILES);
    assert_eq!(
        sso.change.as_deref(),
        Some("security profiles: now Agent, QualityAnalyst")
    );
    assert_eq!(sso.change_basis, Some(ChangeBasis::Unknown));
    assert_eq!(sso.before, None);

    // The failed grant of Admin: what it tried, and a failed escalation.
    let denied = find(&records, ev::ACCESS_DENIED);
    assert_eq!(
        denied.change.as_deref(),
        Some("tried: security profiles: now Admin")
    );
    assert_eq!(denied.findings, ["failed_escalation"]);

    // Calls whose effect is not decoded carry no change; most rows trip no rule.
    assert!(
        records
            .iter()
            .filter(|r| connect_audit_core::change::rule(&r.event_name).is_none())
            .all(|r| r.change.is_none() && r.change_basis.is_none())
    );
    let with_findings = records.iter().filter(|r| !r.findings.is_empty()).count();
    assert!(
        with_findings < records.len() / 4,
        "{with_findings} of {}",
        records.len()
    );
}
