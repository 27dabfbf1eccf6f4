//! The DM's CloudWatch metrics, written as Embedded Metric Format (EMF) log lines,
//! and the per-cluster health alarm that reads them. Pure: no I/O.
//!
//! A Lambda function's stdout goes to CloudWatch Logs, which extracts the
//! metrics of every line that is an EMF document: writing metrics costs no API
//! call, no IAM permission beyond logging, and no time on the sweep's path.
//! [`emf_lines`] turns one health sweep of a region into such lines:
//!
//! * one line per cluster, dimensions `Region` + `ClusterId`:
//!   [`CLUSTER_READY`] (1 when READY, else 0; unit `None`) and [`READY_NODES`]
//!   (`Count`);
//! * one line for the region, dimension `Region`: [`CLUSTERS_READY`],
//!   [`CLUSTERS`], [`PROBE_FAILURES`], [`REPAIRS`] (`Count`) and
//!   [`SWEEP_DURATION`] (`Milliseconds`).
//!
//! CloudWatch names a metric by its namespace, its name and its exact set of
//! dimensions, so an alarm must give the same dimensions as the lines.
//! [`cluster_alarm`] builds the alarm of one cluster from
//! [`cluster_dimensions`], the function the cluster lines are written from.
//!
//! The format is specified in "Specification: Embedded metric format" of the
//! Amazon CloudWatch User Guide.

use serde::Serialize;

use crate::cloud::AlarmSpec;

/// The namespace of every DM metric.
pub const NAMESPACE: &str = "Okera/DM";

/// Per cluster: 1 if the sweep found the cluster READY, else 0 (unit `None`).
pub const CLUSTER_READY: &str = "ClusterReady";
/// Per cluster: how many of its nodes are ready (`Count`).
pub const READY_NODES: &str = "ReadyNodes";
/// Per region: how many of the swept clusters are READY (`Count`).
pub const CLUSTERS_READY: &str = "ClustersReady";
/// Per region: how many clusters the sweep looked at (`Count`).
pub const CLUSTERS: &str = "Clusters";
/// Per region: how long the sweep took (`Milliseconds`).
pub const SWEEP_DURATION: &str = "SweepDuration";
/// Per region: node agents the sweep could not ask (`Count`).
pub const PROBE_FAILURES: &str = "ProbeFailures";
/// Per region: repairs the sweep started, such as replacing a node (`Count`).
pub const REPAIRS: &str = "Repairs";

/// Per region and log-rotation run (all `Count` but the duration): closed hours
/// compacted, parts folded into them, corrupt parts quarantined, hours left for
/// the next run after an error, keys outside the layout, history rows archived,
/// and how long the run took (`Milliseconds`). Alarm on the quarantined, retried
/// and outside-layout counts: each needs a person.
pub const LOG_HOURS_COMPACTED: &str = "LogHoursCompacted";
pub const LOG_PARTS_COMPACTED: &str = "LogPartsCompacted";
pub const LOG_PARTS_QUARANTINED: &str = "LogPartsQuarantined";
pub const LOG_HOURS_RETRIED: &str = "LogHoursRetried";
pub const LOG_KEYS_OUTSIDE_LAYOUT: &str = "LogKeysOutsideLayout";
pub const HISTORY_ROWS_ARCHIVED: &str = "HistoryRowsArchived";
pub const LOG_ROTATION_DURATION: &str = "LogRotationDuration";

/// Dimension: the cluster's id, in decimal.
/// Per region, through `PutMetricData` (an alarm must see it at once): 1,
/// published by the region's DM each minute while it holds the current epoch;
/// 0, published once for the old region by the failover that takes over from
/// it. A standby region publishes nothing. Its serving alarm, and the Route 53
/// health check of its endpoint records, follow it.
pub const REGION_SERVING: &str = "RegionServing";
/// Per region, published by each standby region: seconds since the active
/// region's last heartbeat, as the replicated database shows it. The
/// region-health alarm watches it.
pub const ACTIVE_REGION_HEARTBEAT_AGE: &str = "ActiveRegionHeartbeatAge";
/// Per region and failover or drill (EMF): the measured RTO, the RPO estimate
/// (the replica lag at promotion), and 1 for each that ended well or not.
pub const FAILOVER_RTO: &str = "FailoverRto";
pub const FAILOVER_RPO_ESTIMATE: &str = "FailoverRpoEstimate";
pub const FAILOVER_SUCCEEDED: &str = "FailoverSucceeded";
pub const FAILOVER_FAILED: &str = "FailoverFailed";
pub const DRILL_RTO: &str = "DrillRto";
pub const DRILL_LEAKS: &str = "DrillLeaks";
pub const DRILL_FAILED: &str = "DrillFailed";

pub const CLUSTER_ID_DIMENSION: &str = "ClusterId";
/// Dimension: the AWS region the cluster runs in (`us-west-2`).
pub const REGION_DIMENSION: &str = "Region";

/// The suffix of a cluster's health alarm name (see [`cluster_alarm_name`]).
pub const ALARM_SUFFIX: &str = "-health";

/// CloudWatch units, as EMF and `PutMetricData` spell them.
const NONE: &str = "None";
const COUNT: &str = "Count";
const MILLISECONDS: &str = "Milliseconds";

/// The dimension set of the cluster lines (and of the alarm).
const CLUSTER_DIMENSIONS: [&str; 2] = [REGION_DIMENSION, CLUSTER_ID_DIMENSION];
/// The dimension set of the region line.
const REGION_DIMENSIONS: [&str; 1] = [REGION_DIMENSION];

const CLUSTER_METRICS: [MetricDefinition; 2] = [
    MetricDefinition {
        name: CLUSTER_READY,
        unit: NONE,
    },
    MetricDefinition {
        name: READY_NODES,
        unit: COUNT,
    },
];

const REGION_METRICS: [MetricDefinition; 5] = [
    MetricDefinition {
        name: CLUSTERS_READY,
        unit: COUNT,
    },
    MetricDefinition {
        name: CLUSTERS,
        unit: COUNT,
    },
    MetricDefinition {
        name: SWEEP_DURATION,
        unit: MILLISECONDS,
    },
    MetricDefinition {
        name: PROBE_FAILURES,
        unit: COUNT,
    },
    MetricDefinition {
        name: REPAIRS,
        unit: COUNT,
    },
];

const ROTATION_METRICS: [MetricDefinition; 7] = [
    MetricDefinition {
        name: LOG_HOURS_COMPACTED,
        unit: COUNT,
    },
    MetricDefinition {
        name: LOG_PARTS_COMPACTED,
        unit: COUNT,
    },
    MetricDefinition {
        name: LOG_PARTS_QUARANTINED,
        unit: COUNT,
    },
    MetricDefinition {
        name: LOG_HOURS_RETRIED,
        unit: COUNT,
    },
    MetricDefinition {
        name: LOG_KEYS_OUTSIDE_LAYOUT,
        unit: COUNT,
    },
    MetricDefinition {
        name: HISTORY_ROWS_ARCHIVED,
        unit: COUNT,
    },
    MetricDefinition {
        name: LOG_ROTATION_DURATION,
        unit: MILLISECONDS,
    },
];

/// One log-rotation run of a region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationSample {
    #[serde(skip)]
    pub at_ms: i64,
    pub region: String,
    pub log_hours_compacted: u64,
    pub log_parts_compacted: u64,
    pub log_parts_quarantined: u64,
    pub log_hours_retried: u64,
    pub log_keys_outside_layout: u64,
    pub history_rows_archived: u64,
    pub log_rotation_duration: u64,
}

/// The EMF line of one log-rotation run, dimension `Region`.
pub fn rotation_emf_line(sample: &RotationSample) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(rename = "_aws")]
        aws: Metadata,
        #[serde(flatten)]
        sample: &'a RotationSample,
    }
    let line = Line {
        aws: Metadata::new(sample.at_ms, &REGION_DIMENSIONS, &ROTATION_METRICS),
        sample,
    };
    serde_json::to_string(&line).expect("an EMF line serializes")
}

/// What the sweep found for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSample {
    pub cluster_id: i64,
    /// The cluster is READY: every service runs on every node.
    pub ready: bool,
    pub ready_nodes: usize,
}

/// One health sweep of one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSample {
    /// The AWS region swept (`us-west-2`).
    pub region: String,
    /// When the sweep looked, in epoch milliseconds: the metrics' timestamp.
    pub at_ms: i64,
    pub clusters: Vec<ClusterSample>,
    pub duration_ms: u64,
    pub probe_failures: usize,
    pub repairs: usize,
}

/// The EMF lines of one sweep: one per cluster, in the order of
/// `sample.clusters`, then one for the region. Each is a single-line JSON
/// object (no newline in it); write each on its own line of stdout.
pub fn emf_lines(sample: &SweepSample) -> Vec<String> {
    let mut lines = Vec::with_capacity(sample.clusters.len() + 1);
    for cluster in &sample.clusters {
        let line = ClusterLine {
            aws: Metadata::new(sample.at_ms, &CLUSTER_DIMENSIONS, &CLUSTER_METRICS),
            region: &sample.region,
            cluster_id: cluster.cluster_id.to_string(),
            cluster_ready: u8::from(cluster.ready),
            ready_nodes: cluster.ready_nodes,
        };
        lines.push(serde_json::to_string(&line).expect("an EMF line serializes"));
    }
    let line = RegionLine {
        aws: Metadata::new(sample.at_ms, &REGION_DIMENSIONS, &REGION_METRICS),
        region: &sample.region,
        clusters_ready: sample.clusters.iter().filter(|c| c.ready).count(),
        clusters: sample.clusters.len(),
        sweep_duration: sample.duration_ms,
        probe_failures: sample.probe_failures,
        repairs: sample.repairs,
    };
    lines.push(serde_json::to_string(&line).expect("an EMF line serializes"));
    lines
}

/// The dimensions that select one cluster's metrics: `Region` and `ClusterId`,
/// with the values the cluster lines carry.
pub fn cluster_dimensions(region: &str, cluster_id: i64) -> Vec<(String, String)> {
    CLUSTER_DIMENSIONS
        .iter()
        .map(|&name| {
            let value = match name {
                REGION_DIMENSION => region.to_owned(),
                _ => cluster_id.to_string(),
            };
            (name.to_owned(), value)
        })
        .collect()
}

/// The name of a cluster's health alarm: `<resource_name>-health`, where
/// `resource_name` is the cluster's `okera-<id>-<name>`. The prefix
/// `okera-<id>-` therefore finds every alarm of a cluster.
pub fn cluster_alarm_name(resource_name: &str) -> String {
    format!("{resource_name}{ALARM_SUFFIX}")
}

/// The health alarm of one cluster: `ALARM` when the minimum of
/// [`CLUSTER_READY`] is below 1 in each of 3 consecutive minutes, a minute
/// without data counting as not ready. No sweep for 3 minutes means nothing
/// vouches for the cluster, and this alarm later drives regional failover, so
/// silence must alarm (`treat_missing_data = breaching`). One READY sample in
/// the window keeps it `OK`, which also absorbs the delivery delay of EMF.
///
/// A new cluster is not READY for minutes: put its alarm once it first is, and
/// delete the alarm before the cluster's resources.
pub fn cluster_alarm(
    region: &str,
    cluster_id: i64,
    resource_name: &str,
    tags: &[(String, String)],
) -> AlarmSpec {
    let description = format!(
        "Okera cluster {resource_name} (id {cluster_id}) in {region} has not been READY for 3 minutes: \
         the DM's health sweep found it not READY in each of the last 3 minutes, or reported nothing \
         (no sweep ran: missing data counts as not ready). This alarm drives regional failover. \
         Check the cluster with `ocadm clusters get {cluster_id}` and the reconciler's health sweep \
         logs in {region}. If the sweep is not running, the cluster itself may still be serving."
    );
    AlarmSpec {
        name: cluster_alarm_name(resource_name),
        description,
        namespace: NAMESPACE.to_owned(),
        metric: CLUSTER_READY.to_owned(),
        dimensions: cluster_dimensions(region, cluster_id),
        statistic: "Minimum".to_owned(),
        period_s: 60,
        evaluation_periods: 3,
        comparison: "LessThanThreshold".to_owned(),
        threshold: 1.0,
        treat_missing_data: "breaching".to_owned(),
        tags: tags.to_vec(),
    }
}

/// The alarm, in `region`, that the Route 53 health check of that region's
/// endpoint records follows: `ALARM` as soon as the minute's minimum of
/// [`REGION_SERVING`] is below 1, that is as soon as a failover published 0
/// for the region, and `OK` as soon as the region, active, publishes 1. A
/// minute without data keeps the state (`ignore`): one late publication flips
/// nothing. A region whose CloudWatch cannot be read at all counts as unhealthy
/// (the health check's insufficient-data status).
pub fn serving_alarm(region: &str) -> AlarmSpec {
    AlarmSpec {
        name: crate::domain::failover::serving_alarm_name(region),
        description: format!(
            "The DM in {region} serves: its endpoint records answer while this alarm is OK. The DM of {region} \
             publishes Okera/DM RegionServing=1 only while it holds the current epoch of the fence; a failover \
             away from {region} publishes 0. See docs/failover.md."
        ),
        namespace: NAMESPACE.to_owned(),
        metric: REGION_SERVING.to_owned(),
        dimensions: vec![(REGION_DIMENSION.to_owned(), region.to_owned())],
        statistic: "Minimum".to_owned(),
        period_s: 60,
        evaluation_periods: 1,
        comparison: "LessThanThreshold".to_owned(),
        threshold: 1.0,
        treat_missing_data: "ignore".to_owned(),
        tags: vec![("LaunchedBy".to_owned(), "Okera".to_owned())],
    }
}

/// The region-health alarm of `watched`, in a standby region: `ALARM` when the
/// active region's heartbeat, as the standby's replica shows it, is older than
/// `max_age_s` for 2 minutes. Silence (the standby's own DM not running) is not
/// a reason to fail over.
pub fn region_health_alarm(watched: &str, max_age_s: f64) -> AlarmSpec {
    AlarmSpec {
        name: crate::domain::failover::health_alarm_name(watched),
        description: format!(
            "The active DM region {watched} has not written its heartbeat for more than {max_age_s:.0} s, as this \
             region's database replica shows it. ALARM starts an automated failover to this region. See docs/failover.md."
        ),
        namespace: NAMESPACE.to_owned(),
        metric: ACTIVE_REGION_HEARTBEAT_AGE.to_owned(),
        dimensions: vec![(REGION_DIMENSION.to_owned(), watched.to_owned())],
        statistic: "Minimum".to_owned(),
        period_s: 60,
        evaluation_periods: 2,
        comparison: "GreaterThanThreshold".to_owned(),
        threshold: max_age_s,
        treat_missing_data: "notBreaching".to_owned(),
        tags: vec![("LaunchedBy".to_owned(), "Okera".to_owned())],
    }
}

/// The EMF line of a failover or a drill that ended, dimension `Region` (the
/// target): the values given, by metric name, in milliseconds or counts.
pub fn failover_emf_line(at_ms: i64, region: &str, values: &[(&'static str, f64)]) -> String {
    let mut line = serde_json::Map::new();
    let metrics: Vec<serde_json::Value> = values
        .iter()
        .map(|(name, _)| {
            let unit = if name.ends_with("Rto") || name.ends_with("RpoEstimate") {
                MILLISECONDS
            } else {
                COUNT
            };
            serde_json::json!({ "Name": name, "Unit": unit })
        })
        .collect();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [[REGION_DIMENSION]], "Metrics": metrics }]
        }),
    );
    line.insert(REGION_DIMENSION.into(), region.into());
    for (name, value) in values {
        line.insert((*name).into(), serde_json::json!(value));
    }
    serde_json::Value::Object(line).to_string()
}

/// The `_aws` member: the metadata object of an EMF document.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    /// Epoch milliseconds.
    timestamp: i64,
    cloud_watch_metrics: [MetricDirective; 1],
}

impl Metadata {
    fn new(
        timestamp: i64,
        dimensions: &'static [&'static str],
        metrics: &'static [MetricDefinition],
    ) -> Self {
        Metadata {
            timestamp,
            cloud_watch_metrics: [MetricDirective {
                namespace: NAMESPACE,
                dimensions: [dimensions],
                metrics,
            }],
        }
    }
}

/// Which root members are metrics, and which dimensions they have.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDirective {
    namespace: &'static str,
    /// One dimension set; each name is a root member holding a string.
    dimensions: [&'static [&'static str]; 1],
    metrics: &'static [MetricDefinition],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDefinition {
    name: &'static str,
    unit: &'static str,
}

/// Member names are the metric and dimension names above (PascalCase).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ClusterLine<'a> {
    #[serde(rename = "_aws")]
    aws: Metadata,
    region: &'a str,
    cluster_id: String,
    cluster_ready: u8,
    ready_nodes: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegionLine<'a> {
    #[serde(rename = "_aws")]
    aws: Metadata,
    region: &'a str,
    clusters_ready: usize,
    clusters: usize,
    sweep_duration: u64,
    probe_failures: usize,
    repairs: usize,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Map, Value};

    use super::*;

    /// The units CloudWatch accepts (`StandardUnit`).
    const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];

    fn sample() -> SweepSample {
        SweepSample {
            region: "us-west-2".into(),
            at_ms: 1_767_225_600_123,
            clusters: vec![
                ClusterSample {
                    cluster_id: 7,
                    ready: true,
                    ready_nodes: 3,
                },
                ClusterSample {
                    cluster_id: 12,
                    ready: false,
                    ready_nodes: 1,
                },
                ClusterSample {
                    cluster_id: 1_000_000_000_001,
                    ready: true,
                    ready_nodes: 100,
                },
            ],
            duration_ms: 842,
            probe_failures: 2,
            repairs: 1,
        }
    }

    fn parse(line: &str) -> Map<String, Value> {
        assert!(!line.contains('\n'), "one line: {line}");
        match serde_json::from_str::<Value>(line).unwrap() {
            Value::Object(root) => root,
            other => panic!("not an object: {other}"),
        }
    }

    fn keys(object: &Map<String, Value>) -> BTreeSet<&str> {
        object.keys().map(String::as_str).collect()
    }

    /// Checks a document against the EMF specification and returns its
    /// metrics as (namespace, dimension set, metric name, unit).
    fn check_emf(root: &Map<String, Value>) -> Vec<(String, Vec<String>, String, String)> {
        let aws = root["_aws"].as_object().expect("_aws is an object");
        // The metadata object: Timestamp (epoch ms) and CloudWatchMetrics; no
        // other members.
        assert_eq!(keys(aws), BTreeSet::from(["CloudWatchMetrics", "Timestamp"]));
        assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0));
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert!(!directives.is_empty());
        let mut found = Vec::new();
        for directive in directives {
            let directive = directive.as_object().expect("a MetricDirective object");
            assert_eq!(
                keys(directive),
                BTreeSet::from(["Dimensions", "Metrics", "Namespace"])
            );
            let namespace = directive["Namespace"].as_str().expect("a string");
            assert!((1..=1024).contains(&namespace.len()));
            let sets = directive["Dimensions"]
                .as_array()
                .expect("an array of DimensionSets");
            let metrics = directive["Metrics"].as_array().expect("an array");
            assert!((1..=100).contains(&metrics.len()));
            for set in sets {
                let set: Vec<String> = set
                    .as_array()
                    .expect("a DimensionSet is an array")
                    .iter()
                    .map(|d| d.as_str().expect("dimension names are strings").to_owned())
                    .collect();
                assert!(set.len() <= 30);
                assert_eq!(set.iter().collect::<BTreeSet<_>>().len(), set.len(), "no repeats");
                for name in &set {
                    // Each dimension is a root member holding a string.
                    let value = root.get(name).and_then(Value::as_str);
                    assert!(value.is_some_and(|v| !v.is_empty()), "dimension {name}");
                }
                for metric in metrics {
                    let metric = metric.as_object().expect("a MetricDefinition object");
                    assert!(keys(metric).is_subset(&BTreeSet::from(["Name", "Unit", "StorageResolution"])));
                    let name = metric["Name"].as_str().expect("Name is a string");
                    let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
                    assert!(UNITS.contains(&unit), "{unit}");
                    // Each metric is a root member holding a number.
                    assert!(root.get(name).is_some_and(Value::is_number), "metric {name}");
                    found.push((
                        namespace.to_owned(),
                        set.clone(),
                        name.to_owned(),
                        unit.to_owned(),
                    ));
                }
            }
        }
        found
    }

    #[test]
    fn a_rotation_run_is_one_valid_emf_line_per_region() {
        let sample = RotationSample {
            at_ms: 1_764_086_400_000,
            region: "us-west-2".into(),
            log_hours_compacted: 21,
            log_parts_compacted: 252,
            log_parts_quarantined: 1,
            log_hours_retried: 2,
            log_keys_outside_layout: 3,
            history_rows_archived: 5000,
            log_rotation_duration: 8123,
        };
        let root = parse(&rotation_emf_line(&sample));
        assert_eq!(root["_aws"]["Timestamp"], sample.at_ms);
        assert_eq!(root["Region"], "us-west-2");
        let metrics = check_emf(&root);
        assert_eq!(metrics.len(), 7);
        for (namespace, dims, name, unit) in metrics {
            assert_eq!(
                (namespace.as_str(), dims),
                (NAMESPACE, vec![REGION_DIMENSION.to_owned()])
            );
            let expected = if name == LOG_ROTATION_DURATION {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(unit, expected, "{name}");
        }
        assert_eq!(root[LOG_PARTS_QUARANTINED], 1);
        assert_eq!(root[HISTORY_ROWS_ARCHIVED], 5000);
    }

    #[test]
    fn one_line_per_cluster_then_the_region_line_all_valid_emf() {
        let sample = sample();
        let lines = emf_lines(&sample);
        assert_eq!(lines.len(), 4);
        for line in &lines {
            let root = parse(line);
            assert_eq!(root["_aws"]["Timestamp"], sample.at_ms);
            for (namespace, ..) in check_emf(&root) {
                assert_eq!(namespace, NAMESPACE);
            }
        }
    }

    #[test]
    fn cluster_lines_carry_readiness_by_region_and_cluster() {
        let sample = sample();
        let lines = emf_lines(&sample);
        for (line, cluster) in lines.iter().zip(&sample.clusters) {
            let root = parse(line);
            let set = vec!["Region".to_owned(), "ClusterId".to_owned()];
            assert_eq!(
                check_emf(&root),
                vec![
                    (
                        NAMESPACE.into(),
                        set.clone(),
                        "ClusterReady".into(),
                        "None".into()
                    ),
                    (NAMESPACE.into(), set, "ReadyNodes".into(), "Count".into()),
                ]
            );
            assert_eq!(root["Region"], "us-west-2");
            assert_eq!(root["ClusterId"], cluster.cluster_id.to_string());
            assert_eq!(root["ClusterReady"], u8::from(cluster.ready));
            assert_eq!(root["ReadyNodes"], cluster.ready_nodes);
            assert_eq!(root.len(), 5, "nothing else: {line}");
        }
    }

    #[test]
    fn the_region_line_sums_up_the_sweep() {
        let root = parse(emf_lines(&sample()).last().unwrap());
        let metrics: Vec<(String, String)> = check_emf(&root)
            .into_iter()
            .map(|(_, set, name, unit)| {
                assert_eq!(set, vec!["Region".to_owned()]);
                (name, unit)
            })
            .collect();
        let expected = [
            ("ClustersReady", "Count"),
            ("Clusters", "Count"),
            ("SweepDuration", "Milliseconds"),
            ("ProbeFailures", "Count"),
            ("Repairs", "Count"),
        ]
        .map(|(n, u)| (n.to_owned(), u.to_owned()));
        assert_eq!(metrics, expected);
        assert_eq!(root["Region"], "us-west-2");
        assert_eq!(root["ClustersReady"], 2);
        assert_eq!(root["Clusters"], 3);
        assert_eq!(root["SweepDuration"], 842);
        assert_eq!(root["ProbeFailures"], 2);
        assert_eq!(root["Repairs"], 1);
    }

    #[test]
    fn an_empty_sweep_still_reports_its_region() {
        let sample = SweepSample {
            clusters: vec![],
            ..sample()
        };
        let lines = emf_lines(&sample);
        assert_eq!(lines.len(), 1);
        let root = parse(&lines[0]);
        check_emf(&root);
        assert_eq!(root["Clusters"], 0);
        assert_eq!(root["ClustersReady"], 0);
    }

    #[test]
    fn the_metric_names_are_the_constants() {
        assert_eq!(
            [CLUSTER_READY, READY_NODES, CLUSTER_ID_DIMENSION, REGION_DIMENSION],
            ["ClusterReady", "ReadyNodes", "ClusterId", "Region"]
        );
        assert_eq!(
            [CLUSTERS_READY, CLUSTERS, SWEEP_DURATION, PROBE_FAILURES, REPAIRS],
            [
                "ClustersReady",
                "Clusters",
                "SweepDuration",
                "ProbeFailures",
                "Repairs"
            ]
        );
        assert_eq!(NAMESPACE, "Okera/DM");
    }

    #[test]
    fn cluster_lines_are_small() {
        // Thousands are written a minute: about 280 bytes each, most of it the
        // metric directive that EMF needs in every document.
        let lines = emf_lines(&sample());
        for line in &lines[..3] {
            assert!(line.len() <= 300, "{} bytes: {line}", line.len());
        }
    }

    #[test]
    fn strings_are_escaped() {
        let sample = SweepSample {
            region: "a\"b\\c\nd".into(),
            ..sample()
        };
        for line in emf_lines(&sample) {
            assert_eq!(parse(&line)["Region"], "a\"b\\c\nd");
        }
    }

    #[test]
    fn the_alarm_selects_exactly_the_clusters_line() {
        let sample = sample();
        let alarm = cluster_alarm("us-west-2", 12, "okera-12-sales", &[]);
        let wanted: BTreeSet<(String, String)> = alarm.dimensions.iter().cloned().collect();
        let mut matches = 0;
        for line in emf_lines(&sample) {
            let root = parse(&line);
            for (namespace, set, name, _) in check_emf(&root) {
                // The metric this line writes: namespace, name, and dimensions
                // with their values.
                let emitted: BTreeSet<(String, String)> = set
                    .iter()
                    .map(|d| (d.clone(), root[d].as_str().unwrap().to_owned()))
                    .collect();
                if namespace == alarm.namespace && name == alarm.metric && emitted == wanted {
                    matches += 1;
                    assert_eq!(root["ClusterId"], "12");
                    assert_eq!(root["ClusterReady"], 0);
                }
            }
        }
        assert_eq!(matches, 1, "exactly one cluster's metric");
        assert_eq!(alarm.dimensions, cluster_dimensions("us-west-2", 12));
        assert_eq!(
            alarm.dimensions,
            vec![
                ("Region".to_owned(), "us-west-2".to_owned()),
                ("ClusterId".to_owned(), "12".to_owned())
            ]
        );
    }

    #[test]
    fn the_alarm_fires_when_nothing_vouches_for_the_cluster_for_three_minutes() {
        let tags = vec![("LaunchedBy".to_owned(), "Okera".to_owned())];
        let alarm = cluster_alarm("eu-west-1", 42, "okera-42-sales", &tags);
        assert_eq!(alarm.name, "okera-42-sales-health");
        assert_eq!(alarm.name, cluster_alarm_name("okera-42-sales"));
        assert!(alarm.name.starts_with("okera-42-"));
        assert_eq!(alarm.namespace, "Okera/DM");
        assert_eq!(alarm.metric, "ClusterReady");
        assert_eq!(alarm.statistic, "Minimum");
        assert_eq!(alarm.period_s, 60);
        assert_eq!(alarm.evaluation_periods, 3);
        assert_eq!(alarm.comparison, "LessThanThreshold");
        assert_eq!(alarm.threshold, 1.0);
        assert_eq!(alarm.treat_missing_data, "breaching");
        assert_eq!(alarm.tags, tags);
        // AWS allows 1024 characters of description.
        assert!(alarm.description.len() <= 1024, "{}", alarm.description.len());
        for needle in ["okera-42-sales", "42", "eu-west-1", "failover", "ocadm"] {
            assert!(alarm.description.contains(needle), "{needle}");
        }
    }
}
