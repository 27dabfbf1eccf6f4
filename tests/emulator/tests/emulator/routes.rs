//! The shared emulator end to end, over plain HTTP (moto does not check
//! signatures, so a SigV4-looking Authorization header is enough).

use std::io::{Read, Write};
use std::net::TcpStream;

use emulator::{fresh_account, shared, FaultRule};

/// Sends a request signed (in looks only) as `account` for `service` in
/// `region`; returns (status, headers in lower case, body).
pub(crate) fn send(
    service: &str,
    region: &str,
    account: &str,
    request_line: &str,
    extra_headers: &str,
    body: &str,
) -> (u16, String, String) {
    let endpoint = shared().endpoint();
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{extra_headers}\
         Authorization: AWS4-HMAC-SHA256 Credential={account}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=x\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// Sends an awsQuery request as `account`; returns (status, body).
fn query(service: &str, account: &str, body: &str) -> (u16, String) {
    let (status, _, body) = send(
        service,
        "us-east-1",
        account,
        "POST /",
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
        body,
    );
    (status, body)
}

/// Lambda `Invoke` with `X-Amz-Invocation-Type: Event`, as the SDKs send it
/// (an ARN's colons percent-encoded in the path); returns (status, headers, body).
fn invoke_event(region: &str, account: &str, function: &str, payload: &str) -> (u16, String, String) {
    let function = function.replace(':', "%3A");
    send(
        "lambda",
        region,
        account,
        &format!("POST /2015-03-31/functions/{function}/invocations"),
        "X-Amz-Invocation-Type: Event\r\n",
        payload,
    )
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
            ..Default::default()
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
    assert!(body.contains("<DescribeAutoScalingGroupsResponse"), "{body}");

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
            ..Default::default()
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
    let requests = |account: &str| {
        emulator
            .requests(account)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(requests(&target), [("ec2:DescribeInstances".to_string(), 2)]);
    assert_eq!(requests(&bystander), [("ec2:DescribeInstances".to_string(), 1)]);
}

#[test]
fn twelve_digit_keys_are_accounts() {
    let account = fresh_account();
    let (status, body) = query("sts", &account, "Action=GetCallerIdentity&Version=2011-06-15");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("<Account>{account}</Account>")), "{body}");
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
            ..Default::default()
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("400"), "{err:#}");
}

#[test]
fn event_invocations_of_a_stub_function_are_recorded_not_run() {
    let emulator = shared();
    let account = fresh_account();
    let arn = emulator
        .create_function(&account, "us-west-2", "okera-dm-reconciler")
        .unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:lambda:us-west-2:{account}:function:okera-dm-reconciler")
    );
    assert_eq!(
        emulator
            .create_function(&account, "us-west-2", "okera-dm-reconciler")
            .unwrap(),
        arn,
        "creating it again keeps it"
    );

    let first = r#"{"trigger":"schedule"}"#;
    let second = r#"{"reason":"tick \"\u00e9\" é","n":[1,2]}"#;
    for (function, payload) in [("okera-dm-reconciler", first), (arn.as_str(), second)] {
        let (status, headers, body) = invoke_event("us-west-2", &account, function, payload);
        assert_eq!(status, 202, "{headers}\n{body}");
        assert_eq!(body, "", "{headers}");
        assert!(headers.contains("\r\ncontent-length: 0"), "{headers}");
    }
    assert_eq!(
        emulator.invocations(&account, "okera-dm-reconciler").unwrap(),
        vec![first.to_string(), second.to_string()]
    );
    assert_eq!(emulator.invocations(&account, &arn).unwrap().len(), 2);
    assert!(emulator.invocations(&account, "other").unwrap().is_empty());
    assert!(emulator
        .invocations(&fresh_account(), "okera-dm-reconciler")
        .unwrap()
        .is_empty());

    // A missing function (other name, other region, other account) is a 404, as before.
    for (region, account, function) in [
        ("us-west-2", account.as_str(), "missing"),
        ("us-east-1", account.as_str(), "okera-dm-reconciler"),
        ("us-west-2", fresh_account().as_str(), "okera-dm-reconciler"),
    ] {
        let (status, _, body) = invoke_event(region, account, function, "{}");
        assert_eq!(status, 404, "{body}");
        assert!(body.contains("ResourceNotFoundException"), "{body}");
    }
    assert_eq!(emulator.invocations(&account, &arn).unwrap().len(), 2);
}

#[test]
fn bad_stub_functions_are_reported() {
    let emulator = shared();
    let err = emulator.create_function("12", "us-west-2", "fn").unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 400"), "{err:#}");
    let err = emulator
        .create_function(&fresh_account(), "us-west-2", "bad name")
        .unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 400"), "{err:#}");
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
        ..Default::default()
    })
    .unwrap();
    assert_eq!(own.request_count(None, "sts", "GetCallerIdentity").unwrap(), 0);
    own.reset_faults().unwrap();
    drop(own);
    assert!(
        TcpStream::connect(&authority).is_err(),
        "still listening after drop"
    );
}

/// The string value of `"key":"..."` (first occurrence) in compact JSON.
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let pattern = format!("\"{key}\":\"");
    let start = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pattern.len();
    let end = start + json[start..].find('"').unwrap();
    &json[start..end]
}

#[test]
fn launch_lifecycle_hook_waits_for_heartbeats_and_the_clock() {
    let emulator = shared();
    let account = fresh_account();
    let ok = |service: &str, body: &str| {
        let (status, response) = query(service, &account, body);
        assert_eq!(status, 200, "{body}\n{response}");
        response
    };
    ok(
        "ec2",
        "Action=CreateLaunchTemplate&Version=2016-11-15&LaunchTemplateName=dm-lt\
         &LaunchTemplateData.ImageId=ami-12c6146b&LaunchTemplateData.InstanceType=t3.micro",
    );
    ok(
        "autoscaling",
        "Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=g&MinSize=0&MaxSize=2\
         &DesiredCapacity=0&LaunchTemplate.LaunchTemplateName=dm-lt&LaunchTemplate.Version=%24Latest\
         &AvailabilityZones.member.1=us-east-1a",
    );
    ok(
        "autoscaling",
        "Action=PutLifecycleHook&Version=2011-01-01&AutoScalingGroupName=g&LifecycleHookName=boot\
         &LifecycleTransition=autoscaling%3AEC2_INSTANCE_LAUNCHING&HeartbeatTimeout=60&DefaultResult=CONTINUE",
    );
    ok(
        "autoscaling",
        "Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=g&DesiredCapacity=1",
    );

    let events = emulator.lifecycle_events(&account, 0).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let (seq, event) = &events[0];
    assert_eq!(*seq, 1);
    assert!(
        event.contains(r#""detail-type":"EC2 Instance-launch Lifecycle Action""#),
        "{event}"
    );
    assert_eq!(json_field(event, "source"), "aws.autoscaling");
    assert_eq!(json_field(event, "account"), account);
    assert_eq!(json_field(event, "LifecycleHookName"), "boot");
    let instance = json_field(event, "EC2InstanceId");
    let token = json_field(event, "LifecycleActionToken");

    let describe = "Action=DescribeAutoScalingInstances&Version=2011-01-01";
    let state = |expected: &str| {
        let body = ok("autoscaling", describe);
        assert!(body.contains(instance), "{body}");
        assert!(
            body.contains(&format!("<LifecycleState>{expected}</LifecycleState>")),
            "expected {expected}: {body}"
        );
    };
    state("Pending:Wait");
    // A heartbeat at 40 s restarts the 60 s timeout: still waiting at 80 s.
    emulator.advance_account_clock(&account, 40).unwrap();
    ok(
        "autoscaling",
        &format!(
            "Action=RecordLifecycleActionHeartbeat&Version=2011-01-01&AutoScalingGroupName=g\
             &LifecycleHookName=boot&LifecycleActionToken={token}"
        ),
    );
    emulator.advance_account_clock(&account, 40).unwrap();
    state("Pending:Wait");
    // 101 s: the heartbeat timed out, DefaultResult CONTINUE applies.
    emulator.advance_clock(21).unwrap();
    state("InService");
    assert!(emulator.lifecycle_events(&account, *seq).unwrap().is_empty());

    let (status, body) = query(
        "autoscaling",
        &account,
        &format!(
            "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=g\
             &LifecycleHookName=boot&LifecycleActionToken={token}&LifecycleActionResult=CONTINUE"
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>ValidationError</Code>"), "{body}");
    assert!(
        body.contains(&format!("No active Lifecycle Action found with token {token}")),
        "{body}"
    );
    assert!(
        emulator.lifecycle_events("12", 0).is_err(),
        "a bad account is reported"
    );
}
