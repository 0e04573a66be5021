//! `connect-audit snapshot`: the Connect user directory → the snapshot store.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use connect_audit_config::{Settings, ValidSnapshot};
use connect_audit_core::Store;
use connect_audit_snapshot::{
    Instance, InstanceSummary, RunSummary, SnapshotProgress, Snapshotter,
};
use figment::Figment;

use crate::ExitCode;
use crate::args::SnapshotArgs;
use crate::aws;
use crate::terminal::Reporter;

/// Merges the flags of `snapshot` over the layered config.
pub fn merge_flags(mut figment: Figment, args: &SnapshotArgs) -> Figment {
    if let Some(store) = &args.store {
        figment = connect_audit_config::flag(figment, "snapshot.store", store);
    }
    if !args.instance.is_empty() {
        let instances: Vec<_> = args
            .instance
            .iter()
            .map(|id| {
                let mut entry = std::collections::BTreeMap::new();
                entry.insert("id", id.clone());
                if let Some(region) = &args.region {
                    entry.insert("region", region.clone());
                }
                entry
            })
            .collect();
        figment = connect_audit_config::flag(figment, "instances", instances);
    }
    if args.describe_users {
        figment = connect_audit_config::flag(figment, "snapshot.describe_users", true);
    }
    figment
}

/// Progress of a snapshot on the terminal's bar.
struct Progress<'a>(&'a Reporter);

impl SnapshotProgress for Progress<'_> {
    fn instance_started(&self, instance: &str) {
        self.0
            .status(&format!("instance {instance}: listing users"));
    }

    fn users_listed(&self, instance: &str, users: u64) {
        self.0.add_length(users);
        self.0.advance(users);
        self.0
            .status(&format!("instance {instance}: listing users"));
    }

    fn describing(&self, instance: &str, users: u64) {
        self.0.add_length(users);
        self.0
            .status(&format!("instance {instance}: describing {users} users"));
    }

    fn user_described(&self) {
        self.0.advance(1);
    }

    fn writing(&self, instance: &str, objects: u64) {
        self.0
            .status(&format!("instance {instance}: writing {objects} objects"));
    }
}

/// Runs a snapshot with validated settings.
pub fn run(
    settings: &Settings,
    valid: &ValidSnapshot,
    reporter: &Reporter,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let config = aws::sdk_config(&settings.snapshot).await;
        let s3 = aws::s3_client(&config);
        let store = Store::open(&valid.store, Some(&s3))?;
        let options = settings.snapshot.options();
        let instances: Vec<Instance> = valid
            .instances
            .iter()
            .map(|i| Instance {
                id: i.id.clone(),
                region: i.region.clone(),
                account: i.account.clone(),
            })
            .collect();
        let snapshotter = Snapshotter::new(aws::connect_client(&config), store, options);
        reporter.start_counting("users");
        snapshotter
            .run(&instances, &Progress(reporter))
            .await
            .with_context(|| format!("snapshot into {} failed", valid.store))
    });
    reporter.finish();
    let summary = summary?;
    reporter.summary(&summary_text(valid, &summary, started));
    Ok(ExitCode::Success)
}

fn summary_text(valid: &ValidSnapshot, s: &RunSummary, started: Instant) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "connect-audit: snapshot into {} at {}, {:.1}s",
        valid.store,
        s.run_at,
        started.elapsed().as_secs_f64()
    );
    for i in &s.instances {
        instance_lines(&mut t, i);
    }
    let calls = s.connect_calls();
    let _ = writeln!(
        t,
        "  store:   {} objects before, {} written, {} read, change log {}",
        s.existing_objects, s.object_puts, s.store_gets, s.run_key
    );
    let _ = writeln!(
        t,
        "  history: {} version file(s) written, index {}",
        s.history_puts,
        if s.index_puts > 0 {
            "rewritten"
        } else {
            "unchanged"
        }
    );
    let lists = calls.list_security_profiles
        + calls.list_routing_profiles
        + calls.list_user_hierarchy_groups;
    let details = calls.total() - calls.list_users - lists - calls.describe_user;
    let _ = writeln!(
        t,
        "  connect: {} calls ({} ListUsers, {} profile and group lists, {} DescribeUser, {} for proficiencies and profile and group details)",
        calls.total(),
        calls.list_users,
        lists,
        calls.describe_user,
        details
    );
    t
}

fn instance_lines(t: &mut String, i: &InstanceSummary) {
    let u = &i.users;
    let _ = writeln!(
        t,
        "  instance {} ({}): users {} listed, {} added, {} changed, {} unchanged, {} newly deleted",
        i.instance_id,
        i.region.as_deref().unwrap_or("default region"),
        u.listed,
        u.added,
        u.changed,
        u.unchanged,
        u.deleted
    );
    for (what, c) in [
        ("security profiles", &i.security_profiles),
        ("routing profiles", &i.routing_profiles),
        ("hierarchy groups", &i.hierarchy_groups),
    ] {
        let _ = writeln!(
            t,
            "    {what}: {} listed, {} added, {} changed, {} newly deleted",
            c.listed, c.added, c.changed, c.deleted
        );
    }
}
