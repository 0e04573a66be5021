//! The fake Connect server's full-version calls (the proficiencies of a user, a security
//! profile and its permissions, a routing profile and its queues, a hierarchy group and its
//! path), called through the real `aws-sdk-connect` client: every answer parses into the
//! SDK's types with the values the fake holds, the lists page, and an unknown id is a 404.

use std::collections::BTreeMap;
use std::fmt::Debug;

use aws_sdk_connect::config::http::HttpResponse;
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::list_user_proficiencies::ListUserProficienciesOutput;
use aws_sdk_connect::types::{Channel, PhoneType};
use connect_audit_tests::fake_connect::{
    DEFAULT_ACCOUNT, DEFAULT_REGION, FakeConnect, FakeProficiency, FakeQueue, FakeResource, Fault,
    Operation, ResourceKind, fake_uuid,
};
use serde_json::json;

const INSTANCE: &str = "0f3c8a5e-7d21-4b9e-8c64-2a1f5e9b7d30";
const UNKNOWN: &str = "99999999-9999-4999-a999-999999999999";
/// 2024-06-01T00:00:00Z.
const BUMPED: f64 = 1_717_200_000.0;

fn arn(kind: &str, id: &str) -> String {
    format!("arn:aws:connect:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:instance/{INSTANCE}/{kind}/{id}")
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The call failed as the service fails for an unknown id: 404, `ResourceNotFoundException`,
/// the id in the message.
fn assert_not_found<T: Debug, E: ProvideErrorMetadata + Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
    id: &str,
) {
    let err = result.expect_err("an unknown id is an error");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("ResourceNotFoundException"), "{err:?}");
    assert!(err.message().unwrap_or_default().contains(id), "{err:?}");
}

#[tokio::test]
async fn describe_user_reports_contact_details_phone_config_and_tags_and_proficiencies_page() {
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 4);
    let client = fake.client(1);
    let id = users[1].id.clone();
    let proficiencies = [("Language", "English", 4.5), ("Language", "Japanese", 2.0)]
        .into_iter()
        .chain([("Skill", "Billing", 1.0)])
        .map(|(name, value, level)| FakeProficiency {
            attribute_name: name.to_owned(),
            attribute_value: value.to_owned(),
            level,
        })
        .collect::<Vec<_>>();
    assert!(fake.modify_user(INSTANCE, &id, |u| {
        u.secondary_email = Some("backup@example.org".into());
        u.mobile = Some("+81300000000".into());
        u.phone_config = json!({
            "PhoneType": "DESK_PHONE",
            "AutoAccept": true,
            "AfterContactWorkTimeLimit": 45,
            "DeskPhoneNumber": "+81312345678",
        });
        u.tags = tags(&[("team", "blue"), ("site", "tokyo")]);
        u.proficiencies = proficiencies.clone();
        u.last_modified = BUMPED;
    }));

    let user = client
        .describe_user()
        .instance_id(INSTANCE)
        .user_id(&id)
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    let identity = user.identity_info().unwrap();
    assert_eq!(identity.secondary_email(), Some("backup@example.org"));
    assert_eq!(identity.mobile(), Some("+81300000000"));
    let phone = user.phone_config().unwrap();
    assert_eq!(phone.phone_type(), &PhoneType::DeskPhone);
    assert!(phone.auto_accept());
    assert_eq!(phone.after_contact_work_time_limit(), 45);
    assert_eq!(phone.desk_phone_number(), Some("+81312345678"));
    let user_tags = user.tags().unwrap();
    assert_eq!(user_tags.len(), 2);
    assert_eq!(user_tags["site"], "tokyo");

    // A generated user: no secondary email or mobile, the soft phone, no tags.
    let plain = client
        .describe_user()
        .instance_id(INSTANCE)
        .user_id(&users[3].id)
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    let identity = plain.identity_info().unwrap();
    assert_eq!(identity.secondary_email(), None);
    assert_eq!(identity.mobile(), None);
    assert_eq!(
        plain.phone_config().unwrap().phone_type(),
        &PhoneType::SoftPhone
    );
    assert!(plain.tags().unwrap().is_empty());

    // Two per page: two requests, every proficiency in order.
    fake.reset_counters();
    let pages = client
        .list_user_proficiencies()
        .instance_id(INSTANCE)
        .user_id(&id)
        .max_results(2)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(fake.requests(Operation::ListUserProficiencies), 2);
    let listed: Vec<(String, String, f32)> = pages
        .iter()
        .flat_map(ListUserProficienciesOutput::user_proficiency_list)
        .map(|p| {
            (
                p.attribute_name().to_owned(),
                p.attribute_value().to_owned(),
                p.level(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("Language".to_owned(), "English".to_owned(), 4.5),
            ("Language".to_owned(), "Japanese".to_owned(), 2.0),
            ("Skill".to_owned(), "Billing".to_owned(), 1.0),
        ]
    );
    assert_eq!(pages[0].last_modified_time().unwrap().secs(), 1_717_200_000);
    assert_eq!(pages[0].last_modified_region(), Some(DEFAULT_REGION));

    // Generated users: every other one speaks English.
    let generated = client
        .list_user_proficiencies()
        .instance_id(INSTANCE)
        .user_id(&users[0].id)
        .send()
        .await
        .unwrap();
    assert_eq!(generated.user_proficiency_list().len(), 1);
    assert_eq!(
        generated.user_proficiency_list()[0].attribute_value(),
        "English"
    );

    assert_not_found(
        client
            .list_user_proficiencies()
            .instance_id(INSTANCE)
            .user_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
    assert_not_found(
        client
            .list_user_proficiencies()
            .instance_id(UNKNOWN)
            .user_id(&id)
            .send()
            .await,
        UNKNOWN,
    );
}

#[tokio::test]
async fn security_profile_describes_and_its_permissions_page() {
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 3);
    let client = fake.client(1);
    let admin = fake.instance(INSTANCE).unwrap().security_profiles[0].clone();
    assert_eq!(admin.name, "Admin");
    assert!(
        fake.modify_resource(INSTANCE, ResourceKind::SecurityProfile, &admin.id, |r| {
            r.tags = tags(&[("owner", "it")]);
            r.last_modified = BUMPED;
        })
    );

    let profile = client
        .describe_security_profile()
        .instance_id(INSTANCE)
        .security_profile_id(&admin.id)
        .send()
        .await
        .unwrap()
        .security_profile
        .unwrap();
    assert_eq!(profile.id(), Some(admin.id.as_str()));
    assert_eq!(
        profile.arn(),
        Some(arn("security-profile", &admin.id).as_str())
    );
    assert_eq!(profile.security_profile_name(), Some("Admin"));
    assert_eq!(profile.description(), Some("Admin security profile"));
    assert_eq!(profile.organization_resource_id(), Some(INSTANCE));
    assert_eq!(profile.tags().unwrap()["owner"], "it");
    assert!(profile.allowed_access_control_tags().unwrap().is_empty());
    assert!(profile.tag_restricted_resources().is_empty());
    assert!(profile.hierarchy_restricted_resources().is_empty());
    assert_eq!(profile.last_modified_time().unwrap().secs(), 1_717_200_000);
    assert_eq!(profile.last_modified_region(), Some(DEFAULT_REGION));

    // The list reports the profile's own LastModifiedTime, not a constant.
    let summaries = client
        .list_security_profiles()
        .instance_id(INSTANCE)
        .send()
        .await
        .unwrap();
    let times: Vec<i64> = summaries
        .security_profile_summary_list()
        .iter()
        .map(|s| s.last_modified_time().unwrap().secs())
        .collect();
    assert_eq!(times, [1_717_200_000, 1_714_521_600, 1_714_521_600]);

    fake.reset_counters();
    let permissions: Vec<String> = client
        .list_security_profile_permissions()
        .instance_id(INSTANCE)
        .security_profile_id(&admin.id)
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(permissions, admin.permissions);
    assert_eq!(permissions.len(), 5);
    assert_eq!(fake.requests(Operation::ListSecurityProfilePermissions), 3);
    let page = client
        .list_security_profile_permissions()
        .instance_id(INSTANCE)
        .security_profile_id(&admin.id)
        .send()
        .await
        .unwrap();
    assert_eq!(page.next_token(), None);
    assert_eq!(page.last_modified_time().unwrap().secs(), 1_717_200_000);
    assert_eq!(page.last_modified_region(), Some(DEFAULT_REGION));

    assert_not_found(
        client
            .describe_security_profile()
            .instance_id(INSTANCE)
            .security_profile_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
    assert_not_found(
        client
            .list_security_profile_permissions()
            .instance_id(INSTANCE)
            .security_profile_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
    // A deleted profile is gone from the describe call too.
    assert!(fake.delete_resource(INSTANCE, ResourceKind::SecurityProfile, &admin.id));
    assert!(!fake.delete_resource(INSTANCE, ResourceKind::SecurityProfile, &admin.id));
    assert_not_found(
        client
            .describe_security_profile()
            .instance_id(INSTANCE)
            .security_profile_id(&admin.id)
            .send()
            .await,
        &admin.id,
    );
}

#[tokio::test]
async fn routing_profile_describes_and_its_queues_page() {
    let fake = FakeConnect::start();
    let users = fake.add_instance(INSTANCE, 7);
    let client = fake.client(1);

    let id = fake_uuid("routing-profile-test", 0);
    let queues: Vec<FakeQueue> = (0..5)
        .map(|n| FakeQueue {
            queue_id: fake_uuid("routing-profile-test/queue", n / 2),
            channel: if n % 2 == 0 { "VOICE" } else { "CHAT" }.to_owned(),
            priority: i32::try_from(n).unwrap() + 1,
            delay: i32::try_from(n).unwrap() * 10,
        })
        .collect();
    fake.insert_resource(
        INSTANCE,
        ResourceKind::RoutingProfile,
        FakeResource {
            description: Some("Night shift".into()),
            queues: queues.clone(),
            tags: tags(&[("shift", "night")]),
            ..FakeResource::new(id.clone(), "Night")
        },
    );

    fake.reset_counters();
    let listed = client
        .list_routing_profile_queues()
        .instance_id(INSTANCE)
        .routing_profile_id(&id)
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fake.requests(Operation::ListRoutingProfileQueues), 3);
    assert_eq!(listed.len(), 5);
    for (got, want) in listed.iter().zip(&queues) {
        assert_eq!(got.queue_id(), want.queue_id);
        assert_eq!(got.queue_arn(), arn("queue", &want.queue_id));
        assert_eq!(got.queue_name(), want.name());
        assert_eq!(got.priority(), want.priority);
        assert_eq!(got.delay(), want.delay);
        assert_eq!(got.channel().as_str(), want.channel);
    }
    assert_eq!(listed[1].channel(), &Channel::Chat);
    let first = client
        .list_routing_profile_queues()
        .instance_id(INSTANCE)
        .routing_profile_id(&id)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert!(first.next_token().is_some());
    assert_eq!(
        first.last_modified_time().unwrap().secs(),
        1_714_521_600,
        "GENERATED_MODIFIED"
    );

    let profile = client
        .describe_routing_profile()
        .instance_id(INSTANCE)
        .routing_profile_id(&id)
        .send()
        .await
        .unwrap()
        .routing_profile
        .unwrap();
    assert_eq!(profile.routing_profile_id(), Some(id.as_str()));
    assert_eq!(
        profile.routing_profile_arn(),
        Some(arn("routing-profile", &id).as_str())
    );
    assert_eq!(profile.name(), Some("Night"));
    assert_eq!(profile.instance_id(), Some(INSTANCE));
    assert_eq!(profile.description(), Some("Night shift"));
    assert_eq!(
        profile.default_outbound_queue_id(),
        Some(queues[0].queue_id.as_str())
    );
    let distinct = [0, 2, 4].map(|n| queues[n].queue_id.clone());
    assert_eq!(profile.associated_queue_ids(), distinct);
    assert_eq!(profile.number_of_associated_queues(), Some(3));
    assert_eq!(profile.number_of_associated_users(), Some(0));
    assert!(!profile.is_default());
    let channels: Vec<(&str, i32)> = profile
        .media_concurrencies()
        .iter()
        .map(|m| (m.channel().as_str(), m.concurrency()))
        .collect();
    assert_eq!(channels, [("VOICE", 1), ("CHAT", 2)]);
    assert_eq!(profile.tags().unwrap()["shift"], "night");

    // The generated default profile: its users are counted.
    let basic = fake.instance(INSTANCE).unwrap().routing_profiles[0].clone();
    let holders = users
        .iter()
        .filter(|u| u.routing_profile_id == basic.id)
        .count();
    assert!(holders > 0);
    let profile = client
        .describe_routing_profile()
        .instance_id(INSTANCE)
        .routing_profile_id(&basic.id)
        .send()
        .await
        .unwrap()
        .routing_profile
        .unwrap();
    assert!(profile.is_default());
    assert_eq!(profile.name(), Some("Basic Routing Profile"));
    assert_eq!(
        profile.number_of_associated_users(),
        Some(i64::try_from(holders).unwrap())
    );
    assert_eq!(profile.associated_queue_ids().len(), 1);

    assert_not_found(
        client
            .describe_routing_profile()
            .instance_id(INSTANCE)
            .routing_profile_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
    assert_not_found(
        client
            .list_routing_profile_queues()
            .instance_id(INSTANCE)
            .routing_profile_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
}

#[tokio::test]
async fn hierarchy_group_path_names_its_parents_top_level_first() {
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 3);
    let client = fake.client(1);
    let groups = fake.instance(INSTANCE).unwrap().hierarchy_groups;
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["Japan", "Tokyo", "Tokyo Floor 2"]);

    let describe = |id: String| {
        let client = client.clone();
        async move {
            client
                .describe_user_hierarchy_group()
                .instance_id(INSTANCE)
                .hierarchy_group_id(id)
                .send()
                .await
                .unwrap()
                .hierarchy_group
                .unwrap()
        }
    };
    let floor = describe(groups[2].id.clone()).await;
    assert_eq!(floor.id(), Some(groups[2].id.as_str()));
    assert_eq!(
        floor.arn(),
        Some(arn("agent-group", &groups[2].id).as_str())
    );
    assert_eq!(floor.name(), Some("Tokyo Floor 2"));
    assert_eq!(floor.level_id(), Some("3"));
    assert!(floor.tags().unwrap().is_empty());
    let path = floor.hierarchy_path().unwrap();
    let one = path.level_one().unwrap();
    assert_eq!(one.name(), Some("Japan"));
    assert_eq!(one.id(), Some(groups[0].id.as_str()));
    assert_eq!(one.arn(), Some(arn("agent-group", &groups[0].id).as_str()));
    assert_eq!(path.level_two().unwrap().name(), Some("Tokyo"));
    assert_eq!(path.level_three().unwrap().name(), Some("Tokyo Floor 2"));
    assert!(path.level_four().is_none());
    assert!(path.level_five().is_none());

    let japan = describe(groups[0].id.clone()).await;
    assert_eq!(japan.level_id(), Some("1"));
    let path = japan.hierarchy_path().unwrap();
    assert_eq!(path.level_one().unwrap().name(), Some("Japan"));
    assert!(path.level_two().is_none());

    // Renaming a parent shows in its children's paths; moving a group changes its own.
    fake.modify_resource(INSTANCE, ResourceKind::HierarchyGroup, &groups[0].id, |g| {
        g.name = "Nippon".into();
    });
    fake.modify_resource(INSTANCE, ResourceKind::HierarchyGroup, &groups[2].id, |g| {
        g.parent_id = Some(groups[0].id.clone());
        g.tags = tags(&[("floor", "2")]);
        g.last_modified = BUMPED;
    });
    let moved = describe(groups[2].id.clone()).await;
    assert_eq!(moved.level_id(), Some("2"));
    let path = moved.hierarchy_path().unwrap();
    assert_eq!(path.level_one().unwrap().name(), Some("Nippon"));
    assert_eq!(path.level_two().unwrap().name(), Some("Tokyo Floor 2"));
    assert!(path.level_three().is_none());
    assert_eq!(moved.tags().unwrap()["floor"], "2");
    assert_eq!(moved.last_modified_time().unwrap().secs(), 1_717_200_000);

    assert_not_found(
        client
            .describe_user_hierarchy_group()
            .instance_id(INSTANCE)
            .hierarchy_group_id(UNKNOWN)
            .send()
            .await,
        UNKNOWN,
    );
}

#[tokio::test]
async fn new_calls_are_counted_and_answer_injected_faults() {
    let fake = FakeConnect::start();
    fake.add_instance(INSTANCE, 1);
    let client = fake.client(1);
    let profile = fake.instance(INSTANCE).unwrap().routing_profiles[0].clone();
    fake.inject(Some(Operation::DescribeRoutingProfile), Fault::Internal, 1);

    let err = client
        .describe_routing_profile()
        .instance_id(INSTANCE)
        .routing_profile_id(&profile.id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalServiceException"), "{err:?}");
    assert_eq!(fake.faults_served(Operation::DescribeRoutingProfile), 1);
    client
        .describe_routing_profile()
        .instance_id(INSTANCE)
        .routing_profile_id(&profile.id)
        .send()
        .await
        .unwrap();

    let counts = fake.request_counts();
    assert_eq!(counts["DescribeRoutingProfile"], 2);
    for name in [
        "ListUserProficiencies",
        "DescribeSecurityProfile",
        "ListSecurityProfilePermissions",
        "ListRoutingProfileQueues",
        "DescribeUserHierarchyGroup",
    ] {
        assert_eq!(counts[name], 0, "{name}");
    }
    assert_eq!(Operation::ALL.len(), counts.len());
}
