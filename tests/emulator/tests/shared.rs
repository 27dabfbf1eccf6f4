//! The shared emulator end to end, over plain HTTP (moto does not check
//! signatures, so a SigV4-looking Authorization header is enough).

use std::io::{Read, Write};
use std::net::TcpStream;

use emulator::{fresh_account, shared, FaultRule};

/// Sends an awsQuery request as `account`; returns (status, body).
fn query(service: &str, account: &str, body: &str) -> (u16, String) {
    let endpoint = shared().endpoint();
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn describe_groups(account: &str) -> (u16, String) {
    query(
        "autoscaling",
        account,
        "Action=DescribeAutoScalingGroups&Version=2011-01-01",
    )
}

#[test]
fn endpoint_is_loopback_with_a_port() {
    let endpoint = shared().endpoint();
    let port: u16 = endpoint
        .strip_prefix("http://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
}

#[test]
fn fault_then_pass_and_counts_round_trip() {
    let emulator = shared();
    let account = fresh_account();
    emulator
        .inject_fault(&FaultRule {
            service: "autoscaling".into(),
            action: "DescribeAutoScalingGroups".into(),
            status: 503,
            code: "ServiceUnavailable".into(),
            count: 2,
            account: Some(account.clone()),
        })
        .unwrap();

    for _ in 0..2 {
        let (status, body) = describe_groups(&account);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
        assert!(body.contains("<Type>Receiver</Type>"), "{body}");
    }
    let (status, body) = describe_groups(&account);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<DescribeAutoScalingGroupsResponse"),
        "{body}"
    );

    let count = |account: Option<&str>| {
        emulator
            .request_count(account, "autoscaling", "DescribeAutoScalingGroups")
            .unwrap()
    };
    assert_eq!(count(Some(&account)), 3);
    assert!(count(None) >= 3);
    assert_eq!(
        emulator
            .request_count(Some(&account), "autoscaling", "CreateAutoScalingGroup")
            .unwrap(),
        0
    );
}

#[test]
fn faults_for_one_account_spare_another() {
    let emulator = shared();
    let (target, bystander) = (fresh_account(), fresh_account());
    emulator
        .inject_fault(&FaultRule {
            service: "ec2".into(),
            action: "DescribeInstances".into(),
            status: 400,
            code: "RequestLimitExceeded".into(),
            count: 1,
            account: Some(target.clone()),
        })
        .unwrap();
    let describe = "Action=DescribeInstances&Version=2016-11-15";
    assert_eq!(query("ec2", &bystander, describe).0, 200);
    let (status, body) = query("ec2", &target, describe);
    assert_eq!(status, 400);
    assert!(
        body.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"),
        "{body}"
    );
    assert_eq!(query("ec2", &target, describe).0, 200);
    assert_eq!(
        emulator
            .request_count(Some(&target), "ec2", "DescribeInstances")
            .unwrap(),
        2
    );
}

#[test]
fn twelve_digit_keys_are_accounts() {
    let account = fresh_account();
    let (status, body) = query(
        "sts",
        &account,
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("<Account>{account}</Account>")),
        "{body}"
    );
}

#[test]
fn bad_rules_are_reported() {
    let err = shared()
        .inject_fault(&FaultRule {
            service: "ec2".into(),
            action: "DescribeInstances".into(),
            status: 200,
            code: "X".into(),
            count: 1,
            account: None,
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("400"), "{err:#}");
}

/// A private emulator (reset is global, so not on the shared one).
#[test]
fn own_emulator_resets_and_dies_on_drop() {
    let python = match std::env::var_os("DM_EMULATOR_PYTHON") {
        Some(python) => std::path::PathBuf::from(python),
        None => emulator::ensure_venv(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/emulator-venv"),
        )
        .unwrap(),
    };
    let own = emulator::Emulator::start(&python, None).unwrap();
    assert_ne!(own.endpoint(), shared().endpoint());
    let authority = own.endpoint().strip_prefix("http://").unwrap().to_string();
    own.inject_fault(&FaultRule {
        service: "sts".into(),
        action: "*".into(),
        status: 500,
        code: "InternalFailure".into(),
        count: 5,
        account: None,
    })
    .unwrap();
    assert_eq!(
        own.request_count(None, "sts", "GetCallerIdentity").unwrap(),
        0
    );
    own.reset_faults().unwrap();
    drop(own);
    assert!(
        TcpStream::connect(&authority).is_err(),
        "still listening after drop"
    );
}
