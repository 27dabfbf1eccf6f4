//! The node-agent prober (`HttpAgents`) against little agents served on
//! 127.0.0.1 by the tests themselves: good, silent, stuck mid-answer, malformed,
//! huge, failing, or lying about who they are.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::cloud::agents::{AgentDirectory, HttpAgents, Resolver, DEFAULT_MAX_BODY};
use shared::cloud::{AgentTarget, Agents, ProbeError};
use shared::domain::health::{ServiceState, SERVICES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ID: &str = "i-0123456789abcdef0";
const TIMEOUT: Duration = Duration::from_millis(500);

/// A test agent: its address, how many connections it accepted, and the
/// requests it read (request line and headers).
struct Agent {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Serves every connection with `behave`, which gets the request already read.
async fn agent<F, Fut>(behave: F) -> Agent
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), requests.clone());
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let (seen, behave) = (seen.clone(), behave.clone());
            tokio::spawn(async move {
                let request = read_request(&mut stream).await;
                seen.lock().unwrap().push(request);
                behave(stream).await;
            });
        }
    });
    Agent {
        addr,
        connections,
        requests,
    }
}

async fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn report(instance_id: &str) -> String {
    let services: Vec<serde_json::Value> = SERVICES
        .iter()
        .map(|s| serde_json::json!({"name": s, "state": "RUNNING", "message": ""}))
        .collect();
    serde_json::json!({
        "instanceId": instance_id,
        "clusterId": "1",
        "version": "2.0.0",
        "timestamp": "2026-11-25 14:31:35.485",
        "services": services,
    })
    .to_string()
}

fn http(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers every request with `response`, then closes.
async fn answering(response: Vec<u8>) -> Agent {
    let response = Arc::new(response);
    agent(move |mut stream| {
        let response = response.clone();
        async move {
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    })
    .await
}

fn target() -> AgentTarget {
    AgentTarget {
        instance_id: ID.into(),
        private_ip: None,
    }
}

/// A prober that finds `ID` at `addr`.
fn prober(addr: SocketAddr) -> HttpAgents {
    let directory = AgentDirectory::new();
    directory.insert(ID, addr);
    HttpAgents::new(Resolver::Directory(directory))
        .allow_remote(false)
        .with_timeout(TIMEOUT)
        .with_flush_timeout(TIMEOUT)
}

fn bad_answer(result: Result<impl std::fmt::Debug, ProbeError>) -> String {
    match result {
        Err(ProbeError::BadAnswer(why)) => why,
        other => panic!("expected a bad answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_agent_reports_its_services() {
    let a = answering(http("200 OK", &report(ID))).await;
    let report = prober(a.addr).health(&target()).await.unwrap();
    assert_eq!(report.instance_id, ID);
    assert_eq!(report.version, "2.0.0");
    assert_eq!(report.services.len(), SERVICES.len());
    assert!(report.services.iter().all(|s| s.state == ServiceState::Running));
    assert!(report.ready());
    let requests = a.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = requests[0].to_ascii_lowercase();
    assert!(request.starts_with("get /v1/health http/1.1\r\n"), "{request}");
    assert!(request.contains("\r\nconnection: close\r\n"), "{request}");
}

#[tokio::test]
async fn every_probe_opens_its_own_connection() {
    let a = answering(http("200 OK", &report(ID))).await;
    let agents = prober(a.addr);
    for _ in 0..3 {
        agents.health(&target()).await.unwrap();
    }
    assert_eq!(a.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_flush_is_a_post_answered_with_a_count() {
    let a = answering(http("200 OK", r#"{"uploaded": 7}"#)).await;
    prober(a.addr).flush_logs(&target()).await.unwrap();
    let request = a.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        request.starts_with("post /v1/logs/flush http/1.1\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn a_flush_answered_without_a_count_fails() {
    let a = answering(http("200 OK", r#"{"done": true}"#)).await;
    let why = bad_answer(prober(a.addr).flush_logs(&target()).await);
    assert!(why.contains("uploaded"), "{why}");
}

#[tokio::test]
async fn an_agent_that_never_answers_times_out() {
    let a = agent(|stream| async move {
        std::future::pending::<()>().await;
        drop(stream);
    })
    .await;
    let result = prober(a.addr).health(&target()).await;
    assert_eq!(result, Err(ProbeError::Timeout(500)));
}

#[tokio::test]
async fn an_agent_that_hangs_mid_body_times_out() {
    let a = agent(|mut stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(br#"{"instanceId": "i-01"#).await;
        let _ = stream.flush().await;
        std::future::pending::<()>().await;
    })
    .await;
    let result = prober(a.addr).health(&target()).await;
    assert_eq!(result, Err(ProbeError::Timeout(500)));
}

#[tokio::test]
async fn a_slow_flush_times_out_after_the_flush_timeout() {
    let a = agent(|stream| async move {
        std::future::pending::<()>().await;
        drop(stream);
    })
    .await;
    let agents = prober(a.addr).with_flush_timeout(Duration::from_millis(200));
    assert_eq!(agents.flush_logs(&target()).await, Err(ProbeError::Timeout(200)));
}

#[tokio::test]
async fn malformed_json_is_a_bad_answer_naming_the_parse_error() {
    let a = answering(http(
        "200 OK",
        r#"{"instanceId": "i-0123456789abcdef0", "services": ["#,
    ))
    .await;
    let why = bad_answer(prober(a.addr).health(&target()).await);
    assert!(why.starts_with("invalid JSON: "), "{why}");
    assert!(why.contains("line 1"), "{why}");
}

#[tokio::test]
async fn json_of_another_shape_is_a_bad_answer() {
    let a = answering(http("200 OK", r#"{"status": "ok"}"#)).await;
    let why = bad_answer(prober(a.addr).health(&target()).await);
    assert!(why.contains("instanceId"), "{why}");
}

/// Streams `total` bytes of body, with or without announcing its length.
async fn huge(total: usize, announce: bool) -> Agent {
    agent(move |mut stream| async move {
        let head = if announce {
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n")
        } else {
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_owned()
        };
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
            sent += chunk.len();
        }
    })
    .await
}

#[tokio::test]
async fn a_huge_body_is_cut_off_at_the_limit() {
    for announce in [false, true] {
        let a = huge(8 * 1024 * 1024, announce).await;
        let why = bad_answer(prober(a.addr).health(&target()).await);
        assert_eq!(
            why,
            format!("the answer is over {DEFAULT_MAX_BODY} bytes"),
            "announced: {announce}"
        );
    }
}

#[tokio::test]
async fn the_body_limit_can_be_set() {
    let body = report(ID);
    let a = answering(http("200 OK", &body)).await;
    let why = bad_answer(prober(a.addr).with_max_body(100).health(&target()).await);
    assert_eq!(why, "the answer is over 100 bytes");
    let fits = prober(a.addr).with_max_body(body.len()).health(&target()).await;
    assert!(fits.is_ok(), "{fits:?}");
}

#[tokio::test]
async fn a_status_other_than_200_is_a_bad_answer_naming_it() {
    let a = answering(http("503 Service Unavailable", r#"{"error": "starting"}"#)).await;
    let why = bad_answer(prober(a.addr).health(&target()).await);
    assert!(why.contains("503"), "{why}");
}

#[tokio::test]
async fn an_agent_of_another_instance_is_a_bad_answer() {
    let a = answering(http("200 OK", &report("i-0ffffffffffffffff"))).await;
    let why = bad_answer(prober(a.addr).health(&target()).await);
    assert_eq!(
        why,
        format!("asked {ID} but the agent says it is i-0ffffffffffffffff")
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let result = prober(addr).health(&target()).await;
    assert!(
        matches!(result, Err(ProbeError::Unreachable(ref why)) if why.contains(&addr.to_string())),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_agent_that_closes_without_answering_is_unreachable() {
    let a = agent(|stream| async move { drop(stream) }).await;
    let result = prober(a.addr).health(&target()).await;
    assert!(matches!(result, Err(ProbeError::Unreachable(_))), "{result:?}");
}

#[tokio::test]
async fn non_loopback_addresses_are_refused_without_connecting() {
    let long = Duration::from_secs(30);
    // A private address, as the emulator hands out.
    let private = HttpAgents::new(Resolver::PrivateIp { port: 8085 })
        .allow_remote(false)
        .with_timeout(long);
    let node = AgentTarget {
        instance_id: ID.into(),
        private_ip: Some("10.0.0.5".into()),
    };
    assert_eq!(
        private.health(&node).await,
        Err(ProbeError::Refused("10.0.0.5:8085".into()))
    );
    assert_eq!(
        private.flush_logs(&node).await,
        Err(ProbeError::Refused("10.0.0.5:8085".into()))
    );

    // A public address (TEST-NET-3), from the directory.
    let public: SocketAddr = "203.0.113.7:8085".parse().unwrap();
    let agents = prober(public).with_timeout(long);
    assert_eq!(
        agents.health(&target()).await,
        Err(ProbeError::Refused(public.to_string()))
    );

    // 0.0.0.0 is not loopback, though Linux would connect it to a local
    // listener: the agent listening there sees no connection.
    let a = answering(http("200 OK", &report(ID))).await;
    let unspecified = SocketAddr::from(([0, 0, 0, 0], a.addr.port()));
    let agents = prober(unspecified).with_timeout(long);
    assert_eq!(
        agents.health(&target()).await,
        Err(ProbeError::Refused(unspecified.to_string()))
    );
    assert_eq!(a.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_agent_with_no_address_is_no_address() {
    let by_ip = HttpAgents::new(Resolver::PrivateIp { port: 8085 }).allow_remote(false);
    assert_eq!(by_ip.health(&target()).await, Err(ProbeError::NoAddress));
    let empty = HttpAgents::new(Resolver::Directory(AgentDirectory::new())).allow_remote(false);
    assert_eq!(empty.health(&target()).await, Err(ProbeError::NoAddress));
    assert_eq!(empty.flush_logs(&target()).await, Err(ProbeError::NoAddress));
}
