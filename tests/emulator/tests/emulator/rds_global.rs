//! Aurora global databases: a switchover over RDS's Query protocol, as plain
//! HTTP (moto does not check signatures, so a SigV4-looking Authorization
//! header with the service `rds` is enough), and the replication lag routes.

use std::io::{Read, Write};
use std::net::TcpStream;

use emulator::{fresh_account, shared, FaultRule};

const PRIMARY: &str = "us-east-1";
const SECONDARY: &str = "eu-west-1";

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An RDS Query-protocol request (`Action=...&Version=2014-10-31&...`) as
/// `account` in `region`; returns (status, body).
fn rds(account: &str, region: &str, action: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut body = format!("Action={action}&Version=2014-10-31");
    for (name, value) in params {
        body.push_str(&format!("&{name}={}", form_encode(value)));
    }
    let endpoint = shared().endpoint();
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={account}/20260101/{region}/rds/aws4_request, SignedHeaders=host, Signature=x\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, body.to_string())
}

fn ok(answer: (u16, String)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// `(DBClusterArn, IsWriter)` of every global cluster member in `xml`, in order.
fn members(xml: &str) -> Vec<(String, bool)> {
    xml.split("<DBClusterArn>")
        .skip(1)
        .map(|rest| {
            let arn = rest.split("</DBClusterArn>").next().unwrap().to_string();
            let writer = element(rest, "IsWriter").unwrap() == "true";
            (arn, writer)
        })
        .collect()
}

fn cluster_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:rds:{region}:{account}:cluster:{name}")
}

/// A global database `gdb` of `account`: writer `primary` in us-east-1,
/// secondary `secondary` in eu-west-1.
fn global_database(account: &str) {
    ok(rds(
        account,
        PRIMARY,
        "CreateGlobalCluster",
        &[
            ("GlobalClusterIdentifier", "gdb"),
            ("Engine", "aurora-postgresql"),
        ],
    ));
    ok(rds(
        account,
        PRIMARY,
        "CreateDBCluster",
        &[
            ("DBClusterIdentifier", "primary"),
            ("Engine", "aurora-postgresql"),
            ("GlobalClusterIdentifier", "gdb"),
            ("MasterUsername", "dm"),
            ("MasterUserPassword", "password123"),
        ],
    ));
    ok(rds(
        account,
        SECONDARY,
        "CreateDBCluster",
        &[
            ("DBClusterIdentifier", "secondary"),
            ("Engine", "aurora-postgresql"),
            ("GlobalClusterIdentifier", "gdb"),
        ],
    ));
}

fn describe(account: &str, region: &str) -> String {
    ok(rds(
        account,
        region,
        "DescribeGlobalClusters",
        &[("GlobalClusterIdentifier", "gdb")],
    ))
}

#[test]
fn switchover_over_the_query_protocol_moves_the_writer() {
    let emulator = shared();
    let account = fresh_account();
    global_database(&account);
    let primary = cluster_arn(PRIMARY, &account, "primary");
    let secondary = cluster_arn(SECONDARY, &account, "secondary");
    assert_eq!(
        members(&describe(&account, SECONDARY)),
        vec![(primary.clone(), true), (secondary.clone(), false)]
    );

    // A fault armed for the action fails it once, in the Query protocol's shape.
    emulator
        .inject_fault(&FaultRule {
            service: "rds".into(),
            action: "SwitchoverGlobalCluster".into(),
            status: 503,
            code: "ServiceUnavailable".into(),
            count: 1,
            account: Some(account.clone()),
            ..Default::default()
        })
        .unwrap();
    let switchover = [
        ("GlobalClusterIdentifier", "gdb"),
        ("TargetDbClusterIdentifier", secondary.as_str()),
    ];
    let (status, body) = rds(&account, SECONDARY, "SwitchoverGlobalCluster", &switchover);
    assert_eq!(status, 503, "{body}");
    assert_eq!(element(&body, "Code"), Some("ServiceUnavailable"));

    // The answer shows the switchover in progress; the next describe, done.
    let answer = ok(rds(&account, SECONDARY, "SwitchoverGlobalCluster", &switchover));
    let state = element(&answer, "FailoverState").expect(&answer);
    assert_eq!(element(state, "Status"), Some("switching-over"));
    assert_eq!(element(state, "FromDbClusterArn"), Some(primary.as_str()));
    assert_eq!(element(state, "ToDbClusterArn"), Some(secondary.as_str()));
    assert_eq!(element(state, "IsDataLossAllowed"), Some("false"));
    let described = describe(&account, PRIMARY);
    assert_eq!(
        members(&described),
        vec![(primary.clone(), false), (secondary.clone(), true)]
    );
    assert!(!described.contains("<FailoverState>"), "{described}");
    assert_eq!(
        emulator
            .request_count(Some(&account), "rds", "SwitchoverGlobalCluster")
            .unwrap(),
        2
    );

    // The new writer cannot be switched over to again; an unknown global cluster is 404.
    let (status, body) = rds(&account, SECONDARY, "SwitchoverGlobalCluster", &switchover);
    assert_eq!(status, 400, "{body}");
    assert_eq!(element(&body, "Code"), Some("InvalidGlobalClusterStateFault"));
    let (status, body) = rds(
        &account,
        SECONDARY,
        "SwitchoverGlobalCluster",
        &[
            ("GlobalClusterIdentifier", "missing"),
            ("TargetDbClusterIdentifier", primary.as_str()),
        ],
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(element(&body, "Code"), Some("GlobalClusterNotFoundFault"));
}

#[test]
fn failover_waits_for_the_clock_and_lag_is_recorded() {
    let emulator = shared();
    let account = fresh_account();
    global_database(&account);
    let primary = cluster_arn(PRIMARY, &account, "primary");
    let secondary = cluster_arn(SECONDARY, &account, "secondary");

    assert_eq!(
        emulator
            .replication_lag(&account, SECONDARY, "secondary")
            .unwrap(),
        None
    );
    emulator
        .set_replication_lag(&account, SECONDARY, "secondary", 1250.5)
        .unwrap();
    assert_eq!(
        emulator.replication_lag(&account, SECONDARY, &secondary).unwrap(),
        Some(1250.5)
    );
    assert!(emulator
        .set_replication_lag(&account, PRIMARY, "secondary", 1.0)
        .is_err());
    assert!(emulator
        .set_replication_lag(&account, SECONDARY, "secondary", f64::NAN)
        .is_err());

    emulator.set_global_failover_duration(&account, 60).unwrap();
    let answer = ok(rds(
        &account,
        SECONDARY,
        "FailoverGlobalCluster",
        &[
            ("GlobalClusterIdentifier", "gdb"),
            ("TargetDbClusterIdentifier", secondary.as_str()),
            ("AllowDataLoss", "true"),
        ],
    ));
    assert_eq!(element(&answer, "IsDataLossAllowed"), Some("true"), "{answer}");
    let during = describe(&account, PRIMARY);
    assert_eq!(element(&during, "Status"), Some("failing-over"));
    assert_eq!(
        members(&during),
        vec![(primary.clone(), true), (secondary.clone(), false)]
    );
    emulator.advance_account_clock(&account, 61).unwrap();
    let after = describe(&account, PRIMARY);
    assert_eq!(members(&after), vec![(primary, false), (secondary, true)]);
    assert!(
        after.contains("<SynchronizationStatus>pending-resync</SynchronizationStatus>"),
        "{after}"
    );
}
