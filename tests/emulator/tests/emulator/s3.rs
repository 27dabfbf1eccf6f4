//! S3 fault rules by operation name, partway through a multipart upload
//! (`skip`), and back-dated uploads, over plain path-style HTTP as the SDK
//! sends it.

use std::time::{Duration, SystemTime};

use emulator::{fresh_account, shared, FaultRule};

use crate::routes::send;

fn s3(account: &str, request_line: &str, body: &str) -> (u16, String) {
    let (status, _, body) = send("s3", "us-east-1", account, request_line, "", body);
    (status, body)
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    &xml[start..end]
}

#[test]
fn the_third_upload_part_fails_twice_with_slow_down() {
    let emulator = shared();
    let account = fresh_account();
    let bucket = format!("dm-rs-{account}");
    assert_eq!(s3(&account, &format!("PUT /{bucket}"), "").0, 200);
    let (status, body) = s3(&account, &format!("POST /{bucket}/logs/big?uploads"), "");
    assert_eq!(status, 200, "{body}");
    let upload = element(&body, "UploadId").to_string();

    emulator
        .inject_fault(
            &FaultRule::new("s3", "UploadPart", 503, "SlowDown", 2)
                .account(&account)
                .skip(2),
        )
        .unwrap();
    let part = |number: u32| {
        s3(
            &account,
            &format!("PUT /{bucket}/logs/big?partNumber={number}&uploadId={upload}&x-id=UploadPart"),
            "part",
        )
    };
    let mut statuses = Vec::new();
    for number in [1, 2, 3, 3, 3, 4] {
        let (status, body) = part(number);
        if status == 503 {
            assert!(body.contains("<Error><Code>SlowDown</Code><Message>"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 503, 503, 200, 200]);

    let count = |action: &str| emulator.request_count(Some(&account), "s3", action).unwrap();
    assert_eq!(count("UploadPart"), 6);
    assert_eq!(count("CreateMultipartUpload"), 1);
    assert_eq!(count("PUT"), 7, "CreateBucket and the parts");
    assert_eq!(count("POST"), 1);
}

#[test]
fn bare_method_rules_still_match_s3_requests() {
    let emulator = shared();
    let account = fresh_account();
    let bucket = format!("dm-rs-{account}");
    emulator
        .inject_fault(&FaultRule::new("s3", "PUT", 500, "InternalError", 1).account(&account))
        .unwrap();
    let (status, body) = s3(&account, &format!("PUT /{bucket}"), "");
    assert_eq!(status, 500);
    assert!(body.contains("<Code>InternalError</Code>"), "{body}");
    assert_eq!(s3(&account, &format!("PUT /{bucket}"), "").0, 200);
    assert_eq!(
        emulator
            .request_count(Some(&account), "s3", "CreateBucket")
            .unwrap(),
        2
    );
}

#[test]
fn uploads_can_be_back_dated() {
    let emulator = shared();
    let account = fresh_account();
    let bucket = format!("dm-rs-{account}");
    assert_eq!(s3(&account, &format!("PUT /{bucket}"), "").0, 200);
    let (_, body) = s3(&account, &format!("POST /{bucket}/logs/a?uploads"), "");
    let upload = element(&body, "UploadId").to_string();

    let initiated = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
    emulator
        .set_upload_initiated(&account, &bucket, &upload, initiated)
        .unwrap();
    let (status, body) = s3(&account, &format!("GET /{bucket}?uploads&prefix=logs%2F"), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(element(&body, "Initiated"), "2026-01-01T00:00:00.000Z");
    assert!(emulator
        .set_upload_initiated(&account, &bucket, "no-such-upload", initiated)
        .is_err());
}
