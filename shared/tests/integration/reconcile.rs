//! The reconciler against the emulator, with the store on SQLite and MariaDB:
//! clusters converge, every resource is tagged, the security group equals the
//! table, scale and delete work, and neither a kill nor a concurrent run makes a
//! second set of resources.

use std::collections::BTreeSet;

use aws_sdk_autoscaling::Client as AsgClient;
use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client as Ec2Client;
use shared::cloud::{Compute, Metrics, ObjectStore, Scaling};
use shared::domain::security_group::{self, Peer};
use shared::domain::ClusterUpdate;
use shared::store::Store;
use shared::workflows::reconcile::{plan, Change, Outcome};

use shared::workflows::lifecycle::Outcome as LifecycleOutcome;

use crate::support::{
    account, backends, cluster_spec, converge_with_joins, ctx, lifecycle, ready_environment, reconciler,
    reconciler_with, settings, AgentMode, AwsReconciler, Fleet, REGION,
};

struct Aws {
    ec2: Ec2Client,
    asg: AsgClient,
}

async fn raw(account: &str) -> Aws {
    let config = settings(account, None).sdk_config(REGION).await;
    Aws {
        ec2: Ec2Client::new(&config),
        asg: AsgClient::new(&config),
    }
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// Everything in the emulator that carries the cluster's id tag and still exists.
#[derive(Debug, Default, PartialEq, Eq)]
struct Leftovers {
    groups: Vec<String>,
    templates: Vec<String>,
    instances: Vec<String>,
    objects: Vec<String>,
}

impl Leftovers {
    /// Exactly one group and one template, with `instances` nodes: what a cluster
    /// has however many runs made it.
    fn assert_one_set(&self, instances: usize, context: &str) {
        assert_eq!(
            (self.groups.len(), self.templates.len(), self.instances.len()),
            (1, 1, instances),
            "{context}: {self:?}"
        );
    }
}

async fn leftovers(r: &AwsReconciler, aws: &Aws, cluster: i64) -> Leftovers {
    let id = cluster.to_string();
    let groups = aws
        .asg
        .describe_auto_scaling_groups()
        .filters(
            aws_sdk_autoscaling::types::Filter::builder()
                .name("tag:okera:cluster-id")
                .values(&id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let templates = aws
        .ec2
        .describe_launch_templates()
        .filters(tag_filter("okera:cluster-id", &id))
        .send()
        .await
        .unwrap();
    let instances = aws
        .ec2
        .describe_instances()
        .filters(tag_filter("okera:cluster-id", &id))
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .unwrap();
    Leftovers {
        groups: groups
            .auto_scaling_groups()
            .iter()
            .map(|g| g.auto_scaling_group_name().unwrap().to_owned())
            .collect(),
        templates: templates
            .launch_templates()
            .iter()
            .map(|t| t.launch_template_name().unwrap().to_owned())
            .collect(),
        instances: instances
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| i.instance_id().unwrap().to_owned())
            .collect(),
        objects: r
            .objects
            .list(&r.staging.bucket, &r.staging.key(&format!("config/{cluster}/")))
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn a_cluster_converges_scales_and_deletes_without_leaking_on_both_backends() {
    for (backend, store) in backends().await {
        let acct = account();
        let r = reconciler(&store, &acct, "r1").await;
        let aws = raw(&acct).await;
        let env = ready_environment(&r, "prod", true).await;
        let created = store
            .create_cluster(&ctx(), &cluster_spec(env, "analytics", 3))
            .await
            .unwrap();
        let id = created.target_id;

        // The nodes wait at the launch hook until their agents are ready.
        assert_eq!(r.reconcile_cluster(id).await.unwrap(), Outcome::Reconciled);
        let row = store.get_cluster(id).await.unwrap();
        assert_eq!(
            (row.status_code.as_str(), row.status_message.as_str()),
            ("PROVISIONING", "0 of 3 nodes in service."),
            "{backend}"
        );
        let fleet = Fleet::default();
        let l = lifecycle(&store, &acct, &fleet);
        let joined = fleet.deliver(&l, &acct, AgentMode::Ready).await;
        assert_eq!(
            joined,
            vec![LifecycleOutcome::Joined { cluster_id: id }; 3],
            "{backend}"
        );
        r.reconcile_cluster(id).await.unwrap();
        let row = store.get_cluster(id).await.unwrap();
        assert_eq!(
            (
                row.status_code.as_str(),
                row.status_message.as_str(),
                row.running_services
            ),
            ("READY", "All services running.", 7),
            "{backend}"
        );
        let alarms = r
            .metrics
            .alarms_with_prefix(REGION, &format!("okera-{id}-"))
            .await
            .unwrap();
        assert_eq!(alarms, vec![format!("okera-{id}-analytics-health")], "{backend}");
        assert_eq!(
            row.asg_name.as_deref(),
            Some(format!("okera-{id}-analytics").as_str()),
            "{backend}"
        );
        assert_eq!(store.nodes_of(id).await.unwrap().len(), 3, "{backend}");
        let op = store.get_operation(created.operation_id).await.unwrap();
        assert_eq!(op.state, "SUCCEEDED", "{backend}: {op:?}");
        assert!(
            op.steps.iter().all(|s| s.state == shared::store::StepState::Done),
            "{backend}: {op:?}"
        );
        let made = leftovers(&r, &aws, id).await;
        assert_eq!(
            (
                made.groups.len(),
                made.templates.len(),
                made.instances.len(),
                made.objects.len()
            ),
            (1, 1, 3, 1),
            "{backend}"
        );

        let scale = store
            .update_cluster(
                &ctx(),
                id,
                &ClusterUpdate {
                    num_nodes: Some(5),
                    ..ClusterUpdate::default()
                },
            )
            .await
            .unwrap();
        converge_with_joins(&r, &fleet, &acct, id).await;
        let g = &r
            .scaling
            .groups_tagged(REGION, "okera:cluster-id", &id.to_string())
            .await
            .unwrap()[0];
        assert_eq!(
            (g.min, g.max, g.desired, g.instances.len()),
            (5, 5, 5, 5),
            "{backend}"
        );
        assert_eq!(
            store.get_operation(scale.operation_id).await.unwrap().state,
            "SUCCEEDED",
            "{backend}"
        );
        assert_eq!(
            store.get_cluster(id).await.unwrap().status_message,
            "All services running.",
            "{backend}"
        );

        let delete = store.delete_cluster(&ctx(), id).await.unwrap();
        r.reconcile_cluster(id).await.unwrap();
        assert_eq!(
            leftovers(&r, &aws, id).await,
            Leftovers::default(),
            "{backend}: delete leaked"
        );
        assert!(
            r.metrics
                .alarms_with_prefix(REGION, &format!("okera-{id}-"))
                .await
                .unwrap()
                .is_empty(),
            "{backend}: the alarm leaked"
        );
        assert_eq!(
            store.get_cluster(id).await.unwrap().status_code,
            "TERMINATED",
            "{backend}"
        );
        assert_eq!(
            store.get_operation(delete.operation_id).await.unwrap().state,
            "SUCCEEDED",
            "{backend}"
        );
        assert!(store.nodes_of(id).await.unwrap().is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn every_created_resource_carries_launched_by_okera_and_the_users_tags() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let r = reconciler(&store, &acct, "r1").await;
    let aws = raw(&acct).await;
    let env = ready_environment(&r, "prod", true).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "tagged", 2))
        .await
        .unwrap()
        .target_id;
    r.reconcile_cluster(id).await.unwrap();

    let has = |tags: Vec<(String, String)>, what: &str| {
        assert!(
            tags.contains(&("LaunchedBy".into(), "Okera".into())),
            "{what} lacks LaunchedBy=Okera: {tags:?}"
        );
        tags
    };
    let groups = aws.asg.describe_auto_scaling_groups().send().await.unwrap();
    assert_eq!(groups.auto_scaling_groups().len(), 1);
    for t in groups.auto_scaling_groups()[0].tags() {
        assert_eq!(
            t.propagate_at_launch(),
            Some(true),
            "{t:?} must propagate to instances"
        );
    }
    let group_tags = has(
        groups.auto_scaling_groups()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect(),
        "the group",
    );
    assert!(group_tags.contains(&("okera:cluster-id".into(), id.to_string())));
    assert!(
        group_tags.contains(&("team".into(), "data".into())),
        "user tags: {group_tags:?}"
    );

    let instances = aws
        .ec2
        .describe_instances()
        .filters(tag_filter("LaunchedBy", "Okera"))
        .send()
        .await
        .unwrap();
    let all: Vec<_> = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(all.len(), 2);
    for i in all {
        let tags = has(
            i.tags()
                .iter()
                .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                .collect(),
            "an instance",
        );
        assert!(tags.contains(&("team".into(), "data".into())));
    }
    let templates = aws.ec2.describe_launch_templates().send().await.unwrap();
    assert_eq!(templates.launch_templates().len(), 1);
    has(
        templates.launch_templates()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect(),
        "the launch template",
    );
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(tag_filter("okera:environment-id", &env.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 1);
    has(
        groups.security_groups()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect(),
        "the security group",
    );
}

/// The group's inbound rules as (port, peer) pairs, read with the raw SDK.
async fn rules_of(aws: &Aws, group_id: &str) -> BTreeSet<(u16, Peer)> {
    let out = aws
        .ec2
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
        .unwrap();
    let mut rules = BTreeSet::new();
    for p in out.security_groups()[0].ip_permissions() {
        assert_eq!(p.ip_protocol(), Some("tcp"));
        assert_eq!(p.from_port(), p.to_port(), "one port per rule");
        let port = p.from_port().unwrap() as u16;
        rules.extend(
            p.ip_ranges()
                .iter()
                .map(|r| (port, Peer::Cidr(r.cidr_ip().unwrap().into()))),
        );
        rules.extend(
            p.user_id_group_pairs()
                .iter()
                .map(|g| (port, Peer::Group(g.group_id().unwrap().into()))),
        );
    }
    rules
}

#[tokio::test]
async fn the_security_group_rules_equal_the_documented_table_even_after_drift() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let r = reconciler(&store, &acct, "r1").await;
    let aws = raw(&acct).await;
    let env = ready_environment(&r, "prod", true).await;
    let row = store.get_environment(env).await.unwrap();
    let group = row.security_group_id.clone().expect("group recorded");
    assert_eq!(
        aws.ec2
            .describe_security_groups()
            .group_ids(&group)
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .group_name(),
        Some("prod-OkeraOdasServices")
    );
    // The table from the install guide, written out here independently of the code's table.
    let mut expected = BTreeSet::new();
    expected.insert((22, Peer::Cidr("203.0.113.0/24".into())));
    for port in [10000, 10001, 5000, 8083, 11050, 11051, 12050, 13050] {
        expected.insert((port, Peer::Cidr("10.20.0.0/16".into())));
    }
    for port in [3306, 6443, 6783, 10250, 8085, 9083, 9091, 9098, 11060] {
        expected.insert((port, Peer::Group(group.clone())));
    }
    assert_eq!(rules_of(&aws, &group).await, expected);
    let from_code: BTreeSet<_> = security_group::resolved("203.0.113.0/24", "10.20.0.0/16", &group)
        .into_iter()
        .collect();
    assert_eq!(from_code, expected, "the code's table");

    // Someone opens a port and closes another by hand; the next run puts it back.
    r.compute
        .authorize_ingress(
            REGION,
            &group,
            &[(8080, Peer::Cidr("0.0.0.0/0".into()), "stray".into())],
        )
        .await
        .unwrap();
    r.compute
        .revoke_ingress(REGION, &group, &[(22, Peer::Cidr("203.0.113.0/24".into()))])
        .await
        .unwrap();
    assert_ne!(rules_of(&aws, &group).await, expected);
    r.reconcile_environment(env).await.unwrap();
    assert_eq!(rules_of(&aws, &group).await, expected);
}

#[tokio::test]
async fn a_reconciler_killed_between_creating_the_group_and_recording_it_is_adopted_on_the_next_run() {
    for (backend, store) in backends().await {
        let acct = account();
        let killed = reconciler(&store, &acct, "killed").await;
        let aws = raw(&acct).await;
        let env = ready_environment(&killed, "prod", false).await;
        let id = store
            .create_cluster(&ctx(), &cluster_spec(env, "a", 2))
            .await
            .unwrap()
            .target_id;

        // The first run takes a short lease and gets as far as creating the group.
        assert!(store.claim_cluster(id, "killed", 1).await.unwrap());
        let cluster = store.get_cluster(id).await.unwrap();
        let desired = killed.desired(&cluster, &store.get_environment(env).await.unwrap(), None, &[]);
        let mut created_group = false;
        while !created_group {
            let observed = killed.observe(REGION, &desired, id).await.unwrap();
            for change in plan(&desired, &observed) {
                killed.apply(REGION, &change).await.unwrap();
                created_group |= matches!(change, Change::CreateGroup(_));
            }
        }
        // ... and dies: nothing recorded, the lease left to expire.
        let row = store.get_cluster(id).await.unwrap();
        assert_eq!(
            (row.status_code.as_str(), row.asg_name.as_deref()),
            ("PROVISIONING", None),
            "{backend}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;

        let survivor = reconciler(&store, &acct, "survivor").await;
        converge_with_joins(&survivor, &Fleet::default(), &acct, id).await;
        let row = store.get_cluster(id).await.unwrap();
        assert_eq!(row.status_code, "READY", "{backend}: {}", row.status_message);
        assert_eq!(row.asg_name, Some(format!("okera-{id}-a")), "{backend}");
        leftovers(&survivor, &aws, id).await.assert_one_set(2, backend);
    }
}

#[tokio::test]
async fn two_concurrent_reconciles_make_one_group() {
    let store = Store::connect(&testkit::mysql_url().await).await.unwrap();
    let acct = account();
    let a = reconciler(&store, &acct, "a").await;
    let b = reconciler(&store, &acct, "b").await;
    let aws = raw(&acct).await;
    let env = ready_environment(&a, "prod", false).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 2))
        .await
        .unwrap()
        .target_id;
    let (ra, rb) = tokio::join!(a.reconcile_cluster(id), b.reconcile_cluster(id));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    assert!(outcomes.contains(&Outcome::Reconciled), "{outcomes:?}");
    leftovers(&a, &aws, id).await.assert_one_set(2, "");
}

#[tokio::test]
async fn two_runs_that_both_miss_the_lease_still_make_one_group() {
    // Belt and braces: even if two runs acted at once (a lease taken over from a
    // run that was only slow), deterministic names make AWS refuse the second create.
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let a = reconciler(&store, &acct, "a").await;
    let b = reconciler(&store, &acct, "b").await;
    let aws = raw(&acct).await;
    let env = ready_environment(&a, "prod", false).await;
    let id = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 2))
        .await
        .unwrap()
        .target_id;
    let cluster = store.get_cluster(id).await.unwrap();
    let desired = a.desired(&cluster, &store.get_environment(env).await.unwrap(), None, &[]);
    for _ in 0..3 {
        let (oa, ob) = tokio::join!(a.observe(REGION, &desired, id), b.observe(REGION, &desired, id));
        let (pa, pb) = (plan(&desired, &oa.unwrap()), plan(&desired, &ob.unwrap()));
        let (ra, rb) = tokio::join!(apply_all(&a, &pa), apply_all(&b, &pb));
        ra.unwrap();
        rb.unwrap();
    }
    leftovers(&a, &aws, id).await.assert_one_set(2, "");
}

async fn apply_all(r: &AwsReconciler, changes: &[Change]) -> Result<(), shared::cloud::CloudError> {
    for c in changes {
        r.apply(REGION, c).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_transient_failure_leaves_the_operation_running_and_the_next_run_finishes_it() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let r = reconciler_with(&store, &acct, "r", Some(2)).await;
    let env = ready_environment(&r, "prod", false).await;
    let created = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
        .await
        .unwrap();
    emulator::shared()
        .inject_fault(&emulator::FaultRule {
            service: "autoscaling".into(),
            action: "CreateAutoScalingGroup".into(),
            status: 503,
            code: "ServiceUnavailable".into(),
            count: 2,
            account: Some(acct.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(r.reconcile_cluster(created.target_id).await.is_err());
    let op = store.get_operation(created.operation_id).await.unwrap();
    assert_eq!(
        op.state, "PENDING",
        "a transient failure must not fail the operation: {op:?}"
    );
    converge_with_joins(&r, &Fleet::default(), &acct, created.target_id).await;
    assert_eq!(
        store.get_operation(created.operation_id).await.unwrap().state,
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn a_permanent_failure_fails_the_operation_with_the_reason() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let r = reconciler(&store, &acct, "r").await;
    let env = ready_environment(&r, "prod", false).await;
    let created = store
        .create_cluster(&ctx(), &cluster_spec(env, "a", 1))
        .await
        .unwrap();
    emulator::shared()
        .inject_fault(&emulator::FaultRule {
            service: "ec2".into(),
            action: "CreateLaunchTemplate".into(),
            status: 400,
            code: "InvalidAMIID.NotFound".into(),
            count: 1,
            account: Some(acct.clone()),
            ..Default::default()
        })
        .unwrap();
    r.reconcile_cluster(created.target_id).await.unwrap();
    let op = store.get_operation(created.operation_id).await.unwrap();
    assert_eq!(op.state, "FAILED");
    let error = op.error.unwrap();
    assert!(
        error.contains("create launch template") && error.contains("InvalidAMIID.NotFound"),
        "{error}"
    );
    assert_eq!(
        store.get_cluster(created.target_id).await.unwrap().status_code,
        "FAILED"
    );
}

#[tokio::test]
async fn an_environment_naming_a_missing_vpc_fails_with_the_reason() {
    let store = Store::connect(&testkit::sqlite_url()).await.unwrap();
    let acct = account();
    let r = reconciler(&store, &acct, "r").await;
    let mut spec = crate::support::environment_spec("e", false);
    spec.vpc_id = Some("vpc-0000dead".into());
    let s = store.create_environment(&ctx(), &spec).await.unwrap();
    r.reconcile_environment(s.target_id).await.unwrap();
    let env = store.get_environment(s.target_id).await.unwrap();
    assert_eq!(env.status_code, "FAILED");
    assert!(
        env.status_message.contains("vpc-0000dead"),
        "{}",
        env.status_message
    );
    assert_eq!(store.get_operation(s.operation_id).await.unwrap().state, "FAILED");
}
