//! CloudWatch over Smithy rpcv2 CBOR, as the AWS SDK for Rust sends it, and
//! the alarm state-change events read back with `Emulator::alarm_events`.

use std::io::{Read, Write};
use std::net::TcpStream;

use emulator::{fresh_account, shared};

/// The CBOR values the requests below need, encoded the way aws-smithy-cbor
/// does: structures as indefinite-length maps, doubles as 64-bit floats.
enum Cbor<'a> {
    Map(Vec<(&'a str, Cbor<'a>)>),
    Text(&'a str),
    Int(u64),
    Double(f64),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend([major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

fn encode(value: &Cbor<'_>, out: &mut Vec<u8>) {
    match value {
        Cbor::Map(members) => {
            out.push(0xbf);
            for (key, member) in members {
                encode(&Cbor::Text(key), out);
                encode(member, out);
            }
            out.push(0xff);
        }
        Cbor::Text(text) => {
            head(out, 3, text.len() as u64);
            out.extend(text.as_bytes());
        }
        Cbor::Int(n) => head(out, 0, *n),
        Cbor::Double(x) => {
            out.push(0xfb);
            out.extend(x.to_be_bytes());
        }
    }
}

/// POSTs `input` to `operation`; returns (status, lower-case head, body).
fn rpc(account: &str, operation: &str, input: &Cbor<'_>) -> (u16, String, Vec<u8>) {
    let mut body = Vec::new();
    encode(input, &mut body);
    let endpoint = shared().endpoint();
    let authority = endpoint.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    let head = format!(
        "POST /service/GraniteServiceVersion20100801/operation/{operation} HTTP/1.1\r\n\
         Host: {authority}\r\nConnection: close\r\n\
         content-type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\naccept: application/cbor\r\n\
         x-amzn-query-mode: true\r\nx-amz-date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={account}/20260101/us-east-1/monitoring/aws4_request, \
         SignedHeaders=host, Signature=x\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

#[test]
fn alarm_state_changes_over_rpc_v2_cbor_are_recorded_as_events() {
    let account = fresh_account();
    let alarm = Cbor::Map(vec![
        ("AlarmName", Cbor::Text("dm-heartbeat")),
        ("Namespace", Cbor::Text("DM/Test")),
        ("MetricName", Cbor::Text("Heartbeat")),
        ("Statistic", Cbor::Text("Sum")),
        ("Period", Cbor::Int(60)),
        ("EvaluationPeriods", Cbor::Int(1)),
        ("Threshold", Cbor::Double(1.0)),
        ("ComparisonOperator", Cbor::Text("LessThanThreshold")),
        ("TreatMissingData", Cbor::Text("breaching")),
    ]);
    let (status, head, body) = rpc(&account, "PutMetricAlarm", &alarm);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("smithy-protocol: rpc-v2-cbor"), "{head}");
    assert!(body.is_empty());

    // No heartbeat yet, missing data is breaching: INSUFFICIENT_DATA -> ALARM.
    let events = shared().alarm_events(&account, 0).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, 1);
    let event = &events[0].1;
    assert!(
        event.contains(r#""detail-type":"CloudWatch Alarm State Change""#),
        "{event}"
    );
    assert!(event.contains(r#""source":"aws.cloudwatch""#), "{event}");
    assert!(event.contains(r#""alarmName":"dm-heartbeat""#), "{event}");
    assert!(event.contains(r#""state":{"value":"ALARM""#), "{event}");
    assert!(
        event.contains(r#""previousState":{"value":"INSUFFICIENT_DATA""#),
        "{event}"
    );

    let set = Cbor::Map(vec![
        ("AlarmName", Cbor::Text("dm-heartbeat")),
        ("StateValue", Cbor::Text("OK")),
        ("StateReason", Cbor::Text("drill")),
    ]);
    let (status, head, _) = rpc(&account, "SetAlarmState", &set);
    assert_eq!(status, 200, "{head}");
    let newer = shared().alarm_events(&account, 1).unwrap();
    assert_eq!(newer.len(), 1, "{newer:?}");
    assert_eq!(newer[0].0, 2);
    assert!(
        newer[0].1.contains(r#""state":{"value":"OK","reason":"drill""#),
        "{}",
        newer[0].1
    );
    assert!(shared().alarm_events(&account, 2).unwrap().is_empty());
    assert!(shared().alarm_events(&fresh_account(), 0).unwrap().is_empty());

    // A modelled error: CBOR body, the query-compatible code in a header.
    let missing = Cbor::Map(vec![
        ("AlarmName", Cbor::Text("nope")),
        ("StateValue", Cbor::Text("OK")),
        ("StateReason", Cbor::Text("x")),
    ]);
    let (status, head, body) = rpc(&account, "SetAlarmState", &missing);
    assert_eq!(status, 404, "{head}");
    assert!(head.contains("content-type: application/cbor"), "{head}");
    assert!(
        head.contains("x-amzn-query-error: resourcenotfound;sender"),
        "{head}"
    );
    let type_id = b"com.amazonaws.cloudwatch#ResourceNotFound";
    assert!(body.windows(type_id.len()).any(|w| w == type_id));
}
