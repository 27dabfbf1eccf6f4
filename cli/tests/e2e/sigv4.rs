//! `ocadm` signs its requests with SigV4 when it talks to a DM in AWS. Here a
//! stand-in for API Gateway on 127.0.0.1 receives what `ocadm` sends and checks
//! the signature the way API Gateway does: it computes it again from what it
//! received (method, path, query, the signed headers, the body) and the known
//! secret of the test's credentials. The checker is this file's own code, held
//! to AWS's published examples first, and shown to refuse a tampered request,
//! so that it cannot pass anything.
//!
//! Nothing here leaves the machine: the stand-in listens on 127.0.0.1, and
//! `ocadm` runs with a cleared environment, fixed credentials, no profile files
//! and the instance metadata service turned off.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::dm::bin;

const KEY_ID: &str = "AKIDEXAMPLEOCADMTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=";
const REGION: &str = "eu-west-1";

/// A request as the stand-in received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    query: String,
    /// Lowercase names; repeated headers joined with commas.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// What a signature must be made with.
struct Expect<'a> {
    key_id: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    /// Headers that must be among the signed ones, besides `host` and
    /// `x-amz-date` (and `x-amz-security-token` when it is sent).
    must_sign: &'a [&'a str],
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC-SHA256 (RFC 2104), written out so that the checker shares no code
    // with the signer it checks.
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// SigV4's URI encoding: every byte but the unreserved ones, and `/` when
/// `keep_slash`.
fn uri_encode(raw: &[u8], keep_slash: bool) -> String {
    raw.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b'/' if keep_slash => "/".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.map(|h| u8::from_str_radix(h, 16)) {
            Some(Ok(b)) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Checks the SigV4 signature of `r`, as API Gateway does (for a service other
/// than S3: the path as sent is encoded once more). `Err` says what is wrong.
fn verify(r: &Received, expect: &Expect) -> Result<(), String> {
    let auth = r.headers.get("authorization").ok_or("no Authorization header")?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not a SigV4 Authorization header: {auth}"))?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .ok_or_else(|| format!("no {name} in {auth}"))
    };
    let (credential, signed, signature) =
        (field("Credential")?, field("SignedHeaders")?, field("Signature")?);
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("a malformed credential scope: {credential}"));
    };
    if (key_id, region, service) != (expect.key_id, expect.region, expect.service) {
        return Err(format!("signed as {key_id} for {region}/{service}"));
    }
    let amz_date = r.headers.get("x-amz-date").ok_or("no x-amz-date header")?;
    if !amz_date.starts_with(date) {
        return Err(format!("x-amz-date {amz_date} is not of the scope's day {date}"));
    }
    let signed: Vec<&str> = signed.split(';').collect();
    let mut sorted = signed.clone();
    sorted.sort_unstable();
    if sorted != signed {
        return Err(format!("SignedHeaders are not sorted: {signed:?}"));
    }
    let mut must: Vec<&str> = vec!["host", "x-amz-date"];
    if r.headers.contains_key("x-amz-security-token") {
        must.push("x-amz-security-token");
    }
    must.extend(expect.must_sign);
    for h in must {
        if !signed.contains(&h) {
            return Err(format!("{h} is not signed (SignedHeaders={signed:?})"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        let value = r
            .headers
            .get(*name)
            .ok_or_else(|| format!("signed header {name} was not sent"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let mut query: Vec<(String, String)> = r
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method,
        uri_encode(r.path.as_bytes(), true),
        query,
        canonical_headers,
        signed.join(";"),
        sha256_hex(&r.body)
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(format!("AWS4{}", expect.secret).as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let computed = hex::encode(hmac(&key, to_sign.as_bytes()));
    if computed == signature {
        Ok(())
    } else {
        Err(format!(
            "the signature does not match: got {signature}, computed {computed} over\n{canonical}"
        ))
    }
}

/// A request of AWS's published SigV4 examples (`aws-signing-test-suite/v4`:
/// example.amazonaws.com, us-east-1, service "service", 2015-08-30T12:36:00Z).
fn aws_example(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    signature: &str,
) -> Received {
    let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let mut all: BTreeMap<String, String> = headers.iter().map(|(n, v)| ((*n).into(), (*v).into())).collect();
    all.insert(
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={}, Signature={signature}",
            signed.join(";")
        ),
    );
    Received {
        method: method.into(),
        path: "/".into(),
        query: query.into(),
        headers: all,
        body: body.to_vec(),
    }
}

const AWS_EXAMPLE: Expect = Expect {
    key_id: "AKIDEXAMPLE",
    secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    region: "us-east-1",
    service: "service",
    must_sign: &[],
};

#[test]
fn the_checker_accepts_aws_published_examples_and_refuses_them_altered() {
    let host = ("host", "example.amazonaws.com");
    let date = ("x-amz-date", "20150830T123600Z");
    let examples = [
        // get-vanilla
        aws_example(
            "GET",
            "",
            &[host, date],
            b"",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        // get-vanilla-query-order-key-case
        aws_example(
            "GET",
            "Param2=value2&Param1=value1",
            &[host, date],
            b"",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        // get-vanilla-with-session-token
        aws_example(
            "GET",
            "",
            &[
                host,
                date,
                (
                    "x-amz-security-token",
                    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
                ),
            ],
            b"",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        ),
        // post-x-www-form-urlencoded, whose body is signed
        aws_example(
            "POST",
            "",
            &[
                ("content-length", "13"),
                ("content-type", "application/x-www-form-urlencoded"),
                host,
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
                date,
            ],
            b"Param1=value1",
            "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        ),
    ];
    for example in &examples {
        verify(example, &AWS_EXAMPLE).unwrap_or_else(|e| panic!("{example:?}: {e}"));
        for (what, altered) in alterations(example) {
            assert!(
                verify(&altered, &AWS_EXAMPLE).is_err(),
                "{what} of {example:?} passed"
            );
        }
    }
}

/// `r` changed in each way a signature must catch.
fn alterations(r: &Received) -> Vec<(&'static str, Received)> {
    let mut out = Vec::new();
    let mut body = r.clone();
    body.body.extend_from_slice(b" ");
    out.push(("a longer body", body));
    if !r.body.is_empty() {
        let mut body = r.clone();
        body.body[0] ^= 1;
        out.push(("a body with one bit flipped", body));
    }
    let mut path = r.clone();
    path.path.push_str("v1");
    out.push(("another path", path));
    let mut query = r.clone();
    query.query = if r.query.is_empty() {
        "environmentId=1".into()
    } else {
        format!("{}&x=1", r.query)
    };
    out.push(("another query", query));
    let mut method = r.clone();
    method.method = match r.method.as_str() {
        "GET" => "DELETE",
        "PUT" => "POST",
        _ => "PUT",
    }
    .into();
    out.push(("another method", method));
    let mut date = r.clone();
    date.headers
        .insert("x-amz-date".into(), "20150830T123601Z".into());
    out.push(("another time", date));
    let mut host = r.clone();
    host.headers
        .insert("host".into(), "example.amazonaws.com:8443".into());
    out.push(("another host", host));
    if r.headers.contains_key("x-amz-security-token") {
        let mut token = r.clone();
        token
            .headers
            .insert("x-amz-security-token".into(), "another-token".into());
        out.push(("another session token", token));
    }
    out
}

/// Every request the stand-in received, with its verdict.
type Log = Arc<Mutex<Vec<(Received, Result<(), String>)>>>;

/// The stand-in for API Gateway: answers each request with 200 (or 202 for a
/// write) when its signature checks out, 403 with the reason when it does not,
/// and keeps every request with its verdict.
struct StandIn {
    endpoint: String,
    seen: Log,
}

impl StandIn {
    fn start(must_sign: fn(&Received) -> Vec<&'static str>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                thread::spawn(move || serve(stream, must_sign, log));
            }
        });
        StandIn { endpoint, seen }
    }

    fn seen(&self) -> Vec<(Received, Result<(), String>)> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, must_sign: fn(&Received) -> Vec<&'static str>, log: Log) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap();
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value)
            })
            .or_insert(value);
    }
    let length: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let received = Received {
        method: method.clone(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    };
    let must = must_sign(&received);
    let verdict = verify(
        &received,
        &Expect {
            key_id: KEY_ID,
            secret: SECRET,
            region: REGION,
            service: "execute-api",
            must_sign: &must,
        },
    )
    .and_then(|()| {
        // API Gateway also refuses a signature more than 5 minutes off.
        let amz = &received.headers["x-amz-date"];
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let signed_at = amz_date_seconds(amz).ok_or(format!("a malformed x-amz-date {amz}"))?;
        (now.abs_diff(signed_at) <= 300)
            .then_some(())
            .ok_or(format!("x-amz-date {amz} is more than 5 minutes off"))
    });
    let (status, body) = match &verdict {
        Ok(()) if method == "GET" => ("200 OK", json!({ "verified": true, "path": target })),
        Ok(()) => (
            "202 Accepted",
            json!({ "operationId": 7, "environment": { "id": 3 }, "cluster": { "id": 3 }, "verified": true }),
        ),
        Err(e) => (
            "403 Forbidden",
            json!({ "error": { "code": "FORBIDDEN", "message": format!("stand-in: {e}") } }),
        ),
    };
    log.lock().unwrap().push((received, verdict));
    let body = body.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
fn amz_date_seconds(s: &str) -> Option<u64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// What ocadm must sign besides host and the date: the body's type and the
/// idempotency key, which the API reads.
fn ocadm_must_sign(r: &Received) -> Vec<&'static str> {
    let mut must = Vec::new();
    if !r.body.is_empty() {
        must.push("content-type");
    }
    if r.headers.contains_key("idempotency-key") {
        must.push("idempotency-key");
    }
    must
}

/// A folder of its own, where ocadm finds no AWS files.
fn empty_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ocadm-sigv4-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Runs ocadm with only these variables (and a home without AWS files).
fn ocadm(home: &PathBuf, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let out = Command::new(bin("ocadm"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ ocadm {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn ocadm_signs_reads_and_writes_so_that_the_signature_checks_out_on_what_arrived() {
    let stand_in = StandIn::start(ocadm_must_sign);
    let home = empty_home();
    let vars = [
        ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
        ("OCADM_AUTH", "sigv4"),
        ("OCADM_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        // Ignored in SigV4 mode: it must not be sent.
        ("OCADM_TOKEN", "op-not-sent"),
    ];
    let commands: [&[&str]; 7] = [
        &["--json", "status"],
        &["--json", "clusters", "list", "--environmentid", "3"],
        &[
            "--json",
            "environments",
            "create",
            "--name",
            "signed env",
            "--region",
            REGION,
        ],
        &["--json", "clusters", "update", "--numNodes", "4", "3"],
        &["--json", "clusters", "set_default_version", "--version", "2.1.0"],
        &["--json", "clusters", "delete", "3"],
        &[
            "--json",
            "operations",
            "list",
            "--cluster",
            "3",
            "--state",
            "RUNNING",
        ],
    ];
    for args in commands {
        let out = ocadm(&home, &vars, args);
        assert!(
            out.status.success(),
            "ocadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"verified\": true"));
    }
    let seen = stand_in.seen();
    let methods: Vec<(&str, &str)> = seen
        .iter()
        .map(|(r, _)| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        methods,
        [
            ("GET", "/v1/status"),
            ("GET", "/v1/clusters"),
            ("POST", "/v1/environments"),
            ("PATCH", "/v1/clusters/3"),
            ("PUT", "/v1/settings/default-version"),
            ("DELETE", "/v1/clusters/3"),
            ("GET", "/v1/operations"),
        ]
    );
    for (r, verdict) in &seen {
        assert_eq!(verdict, &Ok(()), "{} {}", r.method, r.path);
        assert_eq!(
            r.headers.get("x-amz-security-token").map(String::as_str),
            Some(SESSION_TOKEN)
        );
        assert!(
            !r.headers["authorization"].contains("op-not-sent"),
            "the bearer token was sent: {r:?}"
        );
    }
    assert_eq!(seen[1].0.query, "environmentId=3");
    assert!(seen[6].0.query.contains("state=RUNNING"), "{:?}", seen[6].0);
    let post = &seen[2].0;
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["name"], "signed env");
    assert!(post.headers["idempotency-key"].starts_with("ocadm-"));
    let signed_headers = post.headers["authorization"]
        .split("SignedHeaders=")
        .nth(1)
        .unwrap();
    assert!(
        signed_headers.starts_with("content-type;host;idempotency-key;x-amz-date;x-amz-security-token,"),
        "{signed_headers}"
    );

    // The checker is not a rubber stamp: each request ocadm signed, altered
    // after signing, fails it.
    for (r, _) in &seen {
        for (what, altered) in alterations(r) {
            let expect = Expect {
                key_id: KEY_ID,
                secret: SECRET,
                region: REGION,
                service: "execute-api",
                must_sign: &ocadm_must_sign(&altered),
            };
            assert!(
                verify(&altered, &expect).is_err(),
                "{what} of {} {} passed",
                r.method,
                r.path
            );
        }
        // Nor does a signature made with another secret pass.
        let other = Expect {
            key_id: KEY_ID,
            secret: "another-secret",
            region: REGION,
            service: "execute-api",
            must_sign: &[],
        };
        assert!(verify(r, &other).is_err());
    }
    let mut tampered = post.clone();
    tampered.body = serde_json::to_vec(&json!({ "name": "other env", "region": REGION })).unwrap();
    tampered
        .headers
        .insert("content-length".into(), tampered.body.len().to_string());
    let e = verify(
        &tampered,
        &Expect {
            key_id: KEY_ID,
            secret: SECRET,
            region: REGION,
            service: "execute-api",
            must_sign: &["content-type", "idempotency-key"],
        },
    )
    .unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn ocadm_signs_for_aws_region_when_the_host_names_none_and_sends_no_session_token_it_lacks() {
    // An execute-api host names its region (a unit test of src/auth.rs reads
    // those); 127.0.0.1 does not, so AWS_REGION does here.
    let stand_in = StandIn::start(ocadm_must_sign);
    let home = empty_home();
    let out = ocadm(
        &home,
        &[
            ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
            ("OCADM_AUTH", "sigv4"),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
        &["--json", "regions"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = stand_in.seen();
    assert_eq!(seen.len(), 1);
    let (r, verdict) = &seen[0];
    assert_eq!(verdict, &Ok(()));
    assert!(!r.headers.contains_key("x-amz-security-token"), "{r:?}");
    assert!(
        r.headers["authorization"].contains(&format!("/{REGION}/execute-api/aws4_request")),
        "{r:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_signature_the_stand_in_refuses_is_reported_with_its_reason_and_a_hint() {
    // ocadm signs with a secret that is not the one the stand-in knows.
    let stand_in = StandIn::start(ocadm_must_sign);
    let home = empty_home();
    let out = ocadm(
        &home,
        &[
            ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
            ("OCADM_AUTH", "sigv4"),
            ("OCADM_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
        &["environments", "list"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the signature does not match") && err.contains("(HTTP 403)"),
        "{err}"
    );
    assert!(err.contains("hint:") && err.contains("OKERA_IAM_ROLES"), "{err}");
    assert_eq!(stand_in.seen().len(), 1);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn without_credentials_sigv4_mode_says_what_to_set_and_sends_nothing() {
    let stand_in = StandIn::start(ocadm_must_sign);
    let home = empty_home();
    let out = ocadm(
        &home,
        &[
            ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
            ("OCADM_AUTH", "sigv4"),
            ("OCADM_REGION", REGION),
        ],
        &["status"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for m in [
        "SigV4",
        "no AWS credentials",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(err.contains(m), "{m:?} is not in: {err}");
    }
    assert!(stand_in.seen().is_empty(), "a request went out unsigned");

    // Without a region to sign for, it says so before anything else.
    let out = ocadm(
        &home,
        &[
            ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
            ("OCADM_AUTH", "sigv4"),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
        &["status"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("set OCADM_REGION"), "{err}");
    assert!(stand_in.seen().is_empty());
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_local_endpoint_gets_the_bearer_token_and_no_signature() {
    let stand_in = StandIn::start(ocadm_must_sign);
    let home = empty_home();
    let out = ocadm(
        &home,
        &[
            ("OCADM_ENDPOINT", stand_in.endpoint.as_str()),
            ("OCADM_TOKEN", "op-local-token"),
            // Credentials in the environment do not make a local endpoint signed.
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
        &["--json", "status"],
    );
    // The stand-in refuses it (it wants a signature), which is the point.
    assert!(!out.status.success());
    let seen = stand_in.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0].0;
    assert_eq!(r.headers["authorization"], "Bearer op-local-token");
    assert!(!r.headers.contains_key("x-amz-date"), "{r:?}");
    let _ = std::fs::remove_dir_all(&home);
}
