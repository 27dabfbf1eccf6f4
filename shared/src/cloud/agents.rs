//! The HTTP prober of the node agents ([`Agents`], specified in `docs/agent.md`).
//!
//! [`HttpAgents`] asks one agent one question per TCP connection: HTTP/1.1, no
//! pool, `Connection: close`. Each exchange is bounded in time (connecting,
//! the headers and the whole body all fit in one timeout) and in size (the body
//! is read up to a limit, never further). Where the agent is comes from a
//! [`Resolver`]: the node's private IP in AWS, or an [`AgentDirectory`] that the
//! local simulator fills with the loopback addresses of the agents it runs.
//!
//! Outside AWS the prober contacts loopback addresses only (DESIGN.md §4): any
//! other address is [`ProbeError::Refused`] before a connection is attempted.
//!
//! An answer with an unexpected status is [`ProbeError::BadAnswer`]; when its
//! (bounded) body carries the agent's message (`{"error": "..."}`), the error
//! says it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::{AgentTarget, Agents, ProbeError};
use crate::domain::health::AgentReport;

/// The path of the health check.
pub const HEALTH_PATH: &str = "/v1/health";
/// The path that makes an agent upload its logs.
pub const FLUSH_PATH: &str = "/v1/logs/flush";
/// The path that makes an agent restart one service, or all of them.
pub const RESTART_PATH: &str = "/v1/services/restart";
/// How long a health probe may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a log flush may take: the agent answers once its uploads are done.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart request may take: the agent answers once the restart has
/// begun, not once the services are back.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer body read.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// True inside AWS Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set): the only place
/// where the prober may contact addresses other than loopback.
pub fn running_in_aws() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Instance id to agent address, shared between whoever runs agents (the local
/// simulator) and the prober. Clones share one map.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory(Arc<RwLock<HashMap<String, SocketAddr>>>);

impl AgentDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an agent; returns the address it replaces, if any.
    pub fn insert(&self, instance_id: impl Into<String>, addr: SocketAddr) -> Option<SocketAddr> {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(instance_id.into(), addr)
    }

    pub fn remove(&self, instance_id: &str) -> Option<SocketAddr> {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance_id)
    }

    pub fn get(&self, instance_id: &str) -> Option<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(instance_id)
            .copied()
    }

    /// Every registered agent, by instance id.
    pub fn list(&self) -> Vec<(String, SocketAddr)> {
        let mut all: Vec<(String, SocketAddr)> = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, addr)| (id.clone(), *addr))
            .collect();
        all.sort();
        all
    }
}

/// Where a node's agent listens.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// `private_ip:port`: the node itself, as in AWS.
    PrivateIp { port: u16 },
    /// Looked up by instance id: the local simulator's agents.
    Directory(AgentDirectory),
}

impl Resolver {
    /// The address of `target`'s agent; [`ProbeError::NoAddress`] when none is known.
    pub fn resolve(&self, target: &AgentTarget) -> Result<SocketAddr, ProbeError> {
        match self {
            Resolver::PrivateIp { port } => {
                let raw = target.private_ip.as_deref().ok_or(ProbeError::NoAddress)?;
                let ip: IpAddr = raw.parse().map_err(|_| {
                    ProbeError::Unreachable(format!(
                        "the private IP {raw:?} of {} is not an IP address",
                        target.instance_id
                    ))
                })?;
                Ok(SocketAddr::new(ip, *port))
            }
            Resolver::Directory(directory) => directory.get(&target.instance_id).ok_or(ProbeError::NoAddress),
        }
    }
}

/// The HTTP prober. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpAgents {
    resolver: Resolver,
    timeout: Duration,
    flush_timeout: Duration,
    restart_timeout: Duration,
    max_body: usize,
    allow_remote: bool,
}

impl HttpAgents {
    /// A prober with the default limits, allowed to contact non-loopback
    /// addresses only when [`running_in_aws`].
    pub fn new(resolver: Resolver) -> Self {
        HttpAgents {
            resolver,
            timeout: DEFAULT_TIMEOUT,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            restart_timeout: DEFAULT_RESTART_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            allow_remote: running_in_aws(),
        }
    }

    /// The time limit of one health probe, connecting included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time limit of one log flush.
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The time limit of one restart request (until the agent says it began).
    pub fn with_restart_timeout(mut self, timeout: Duration) -> Self {
        self.restart_timeout = timeout;
        self
    }

    /// The largest answer body read, in bytes.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Whether addresses other than loopback may be contacted.
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Resolves the target and checks that it may be contacted.
    fn address_of(&self, target: &AgentTarget) -> Result<SocketAddr, ProbeError> {
        let addr = self.resolver.resolve(target)?;
        if self.allow_remote || addr.ip().to_canonical().is_loopback() {
            Ok(addr)
        } else {
            Err(ProbeError::Refused(addr.to_string()))
        }
    }

    /// One request (with a JSON `body`, if any), its answer's status checked
    /// against `expect` and its body read, within `timeout`.
    async fn call(
        &self,
        target: &AgentTarget,
        request: Call<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProbeError> {
        let addr = self.address_of(target)?;
        let exchange = exchange(addr, request, self.max_body);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            )),
        }
    }
}

impl Agents for HttpAgents {
    async fn health(&self, node: &AgentTarget) -> Result<AgentReport, ProbeError> {
        let body = self.call(node, Call::get(HEALTH_PATH), self.timeout).await?;
        let report: AgentReport = parse(&body)?;
        if report.instance_id != node.instance_id {
            return Err(ProbeError::BadAnswer(format!(
                "asked {} but the agent says it is {}",
                node.instance_id, report.instance_id
            )));
        }
        Ok(report)
    }

    async fn flush_logs(&self, node: &AgentTarget) -> Result<(), ProbeError> {
        let body = self
            .call(node, Call::post(FLUSH_PATH, None), self.flush_timeout)
            .await?;
        let flushed: Flushed = parse(&body)?;
        tracing::debug!(instance = %node.instance_id, uploaded = flushed.uploaded, "agent flushed its logs");
        Ok(())
    }

    async fn restart(&self, node: &AgentTarget, service: Option<&str>) -> Result<(), ProbeError> {
        let body = match service {
            Some(service) => serde_json::json!({ "service": service }),
            None => serde_json::json!({}),
        };
        let request = Call {
            expect: Expect::Success,
            ..Call::post(RESTART_PATH, Some(body.to_string()))
        };
        let answer = self.call(node, request, self.restart_timeout).await?;
        // A 2xx means the restart has begun; the list is only for the log.
        let restarting = serde_json::from_slice::<Restarting>(&answer)
            .map(|r| r.restarting.join(", "))
            .unwrap_or_default();
        tracing::info!(instance = %node.instance_id, service = service.unwrap_or("all"), restarting = %restarting, "agent is restarting services");
        Ok(())
    }
}

/// The statuses an answer may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `200 OK` only.
    Ok,
    /// Any 2xx (`202 Accepted` for a restart).
    Success,
}

impl Expect {
    fn admits(self, status: StatusCode) -> bool {
        match self {
            Expect::Ok => status == StatusCode::OK,
            Expect::Success => status.is_success(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Ok => "200",
            Expect::Success => "2xx",
        }
    }
}

/// One request to an agent.
#[derive(Debug, Clone)]
struct Call<'a> {
    method: Method,
    path: &'a str,
    /// A JSON body.
    body: Option<String>,
    expect: Expect,
}

impl<'a> Call<'a> {
    fn get(path: &'a str) -> Self {
        Call {
            method: Method::GET,
            path,
            body: None,
            expect: Expect::Ok,
        }
    }

    fn post(path: &'a str, body: Option<String>) -> Self {
        Call {
            method: Method::POST,
            path,
            body,
            expect: Expect::Ok,
        }
    }
}

/// The answer of `POST /v1/services/restart`.
#[derive(Deserialize)]
struct Restarting {
    #[serde(default)]
    restarting: Vec<String>,
}

/// The answer of `POST /v1/logs/flush`.
#[derive(Deserialize)]
struct Flushed {
    uploaded: u64,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProbeError> {
    serde_json::from_slice(body).map_err(|e| ProbeError::BadAnswer(format!("invalid JSON: {e}")))
}

/// Connects, sends one request and reads its answer. The connection is driven in
/// this future, so dropping it (on timeout) closes the socket.
async fn exchange(addr: SocketAddr, call: Call<'_>, max_body: usize) -> Result<Vec<u8>, ProbeError> {
    let unreachable =
        |what: &str, e: &dyn std::fmt::Display| ProbeError::Unreachable(format!("{what} {addr}: {e}"));
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable("connecting to", &e))?;
    let (mut sender, connection) = http1::Builder::new()
        .max_buf_size(max_body.saturating_add(16 * 1024))
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable("talking to", &e))?;
    let mut request = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("okera-dm/", env!("CARGO_PKG_VERSION")));
    if call.body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let expect = call.expect;
    let request = request
        .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
        .map_err(|e| ProbeError::Unreachable(format!("building the request to {addr}: {e}")))?;
    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable("asking", &e))?;
        read_answer(response, max_body, expect)
            .await
            .map_err(|e| match e {
                Failure::Probe(p) => p,
                Failure::Body(e) => unreachable("reading the answer of", &e),
            })
    };
    drive(connection, work).await
}

/// Polls `work` to its end while driving the connection beside it. The
/// connection may finish first (the agent closed it after answering): the
/// answer is then already buffered, and `work` finishes on its own.
async fn drive<C, W, T>(connection: C, work: W) -> Result<T, ProbeError>
where
    C: Future<Output = hyper::Result<()>>,
    W: Future<Output = Result<T, ProbeError>>,
{
    let mut connection = pin!(connection);
    let mut work = pin!(work);
    let mut connection_done = false;
    loop {
        tokio::select! {
            result = &mut work => return result,
            ended = &mut connection, if !connection_done => {
                connection_done = true;
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "agent connection ended");
                }
            }
        }
    }
}

enum Failure {
    Probe(ProbeError),
    Body(hyper::Error),
}

/// Reads the body up to `max_body` bytes, and checks the status against
/// `expect`. An answer with another status is a bad answer that carries the
/// agent's message, when its body (read to the same limit) has one.
async fn read_answer(
    response: Response<Incoming>,
    max_body: usize,
    expect: Expect,
) -> Result<Vec<u8>, Failure> {
    let status = response.status();
    if !expect.admits(status) {
        // An agent that stalls in the middle of its error still fails as a bad answer.
        let said = tokio::time::timeout(ERROR_BODY_WAIT, read_body(response, max_body))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|body| agent_message(&body))
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(Failure::Probe(ProbeError::BadAnswer(format!(
            "HTTP {status}, expected {}{said}",
            expect.describe()
        ))));
    }
    read_body(response, max_body).await
}

/// How long the body of an answer with an unexpected status is waited for.
const ERROR_BODY_WAIT: Duration = Duration::from_millis(250);
/// The longest agent message quoted in an error.
const MAX_MESSAGE: usize = 500;

/// What an error answer says: `{"error": "..."}`, `{"error": {"message": "..."}}`
/// or `{"message": "..."}`; otherwise its text, if any. Cut to [`MAX_MESSAGE`].
fn agent_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let said = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => [&v["error"], &v["error"]["message"], &v["message"]]
            .into_iter()
            .find_map(|m| m.as_str().map(str::to_owned)),
        Err(_) => Some(text.into_owned()),
    }?;
    let said = said.trim();
    if said.is_empty() {
        return None;
    }
    Some(match said.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &said[..cut]),
        None => said.to_owned(),
    })
}

/// Reads the body up to `max_body` bytes.
async fn read_body(response: Response<Incoming>, max_body: usize) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::Probe(ProbeError::BadAnswer(format!(
            "the answer is over {max_body} bytes"
        )))
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Failure::Body)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max_body {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ip: Option<&str>) -> AgentTarget {
        AgentTarget {
            instance_id: "i-1".into(),
            private_ip: ip.map(str::to_owned),
        }
    }

    #[test]
    fn private_ips_resolve_to_the_agent_port() {
        let r = Resolver::PrivateIp { port: 8085 };
        assert_eq!(
            r.resolve(&target(Some("10.0.0.5"))),
            Ok("10.0.0.5:8085".parse().unwrap())
        );
        assert_eq!(r.resolve(&target(None)), Err(ProbeError::NoAddress));
        assert!(matches!(
            r.resolve(&target(Some("nope"))),
            Err(ProbeError::Unreachable(_))
        ));
    }

    #[test]
    fn the_directory_is_shared_by_its_clones() {
        let d = AgentDirectory::new();
        let r = Resolver::Directory(d.clone());
        assert_eq!(r.resolve(&target(None)), Err(ProbeError::NoAddress));
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(d.insert("i-1", addr), None);
        assert_eq!(r.resolve(&target(None)), Ok(addr));
        assert_eq!(d.list(), vec![("i-1".to_owned(), addr)]);
        assert_eq!(d.remove("i-1"), Some(addr));
        assert_eq!(d.get("i-1"), None);
    }

    #[test]
    fn only_loopback_is_allowed_outside_aws() {
        let agents = HttpAgents::new(Resolver::PrivateIp { port: 8085 }).allow_remote(false);
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(agents.address_of(&target(Some(ip))).is_ok(), "{ip}");
        }
        for ip in ["10.0.0.5", "54.1.2.3", "::ffff:10.0.0.5", "0.0.0.0"] {
            assert!(
                matches!(agents.address_of(&target(Some(ip))), Err(ProbeError::Refused(_))),
                "{ip}"
            );
        }
        let remote = agents.allow_remote(true);
        assert!(remote.address_of(&target(Some("10.0.0.5"))).is_ok());
    }

    /// A fake agent on 127.0.0.1 that answers every request with `response`
    /// and keeps each request it read (head and body), or never answers when
    /// `response` is `None`.
    struct FakeAgent {
        addr: SocketAddr,
        requests: Arc<std::sync::Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeAgent {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn fake_agent(response: Option<String>) -> FakeAgent {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, response) = (seen.clone(), response.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|n| n.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + length {
                                break;
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf).into_owned());
                    match response {
                        Some(r) => {
                            let _ = stream.write_all(r.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        FakeAgent { addr, requests, task }
    }

    fn http(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A prober that finds `i-1` at `addr`, with short limits.
    fn prober(addr: SocketAddr) -> HttpAgents {
        let directory = AgentDirectory::new();
        directory.insert("i-1", addr);
        HttpAgents::new(Resolver::Directory(directory))
            .allow_remote(false)
            .with_restart_timeout(Duration::from_millis(300))
    }

    fn bad_answer(result: Result<(), ProbeError>) -> String {
        match result {
            Err(ProbeError::BadAnswer(why)) => why,
            other => panic!("expected a bad answer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_restart_posts_the_service_and_accepts_202() {
        let a = fake_agent(Some(http(
            "202 Accepted",
            r#"{"restarting": ["planner", "worker"]}"#,
        )))
        .await;
        prober(a.addr)
            .restart(&target(None), Some("planner"))
            .await
            .unwrap();
        let request = a.requests.lock().unwrap()[0].clone();
        let lower = request.to_ascii_lowercase();
        assert!(
            lower.starts_with("post /v1/services/restart http/1.1\r\n"),
            "{request}"
        );
        assert!(
            lower.contains("\r\ncontent-type: application/json\r\n"),
            "{request}"
        );
        assert!(lower.contains("\r\nconnection: close\r\n"), "{request}");
        let body = request.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap(),
            serde_json::json!({"service": "planner"})
        );
    }

    #[tokio::test]
    async fn restarting_everything_sends_an_empty_object() {
        let a = fake_agent(Some(http("202 Accepted", r#"{"restarting": []}"#))).await;
        prober(a.addr).restart(&target(None), None).await.unwrap();
        let request = a.requests.lock().unwrap()[0].clone();
        assert_eq!(request.split("\r\n\r\n").nth(1), Some("{}"), "{request}");
    }

    #[tokio::test]
    async fn any_2xx_means_the_restart_began_whatever_the_body() {
        for answer in [
            http("200 OK", ""),
            http("204 No Content", ""),
            http("202 Accepted", "not json"),
        ] {
            let a = fake_agent(Some(answer)).await;
            assert_eq!(prober(a.addr).restart(&target(None), None).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn a_refused_restart_carries_the_agents_message() {
        let said =
            r#"{"error": "there is no service \"hms\"; services: canary, planner", "field": "service"}"#;
        let a = fake_agent(Some(http("400 Bad Request", said))).await;
        let why = bad_answer(prober(a.addr).restart(&target(None), Some("hms")).await);
        assert_eq!(
            why,
            "HTTP 400 Bad Request, expected 2xx: there is no service \"hms\"; services: canary, planner"
        );
        let a = fake_agent(Some(http("503 Service Unavailable", "  busy\n"))).await;
        let why = bad_answer(prober(a.addr).restart(&target(None), None).await);
        assert_eq!(why, "HTTP 503 Service Unavailable, expected 2xx: busy");
        let a = fake_agent(Some(http("500 Internal Server Error", ""))).await;
        let why = bad_answer(prober(a.addr).restart(&target(None), None).await);
        assert_eq!(why, "HTTP 500 Internal Server Error, expected 2xx");
    }

    #[tokio::test]
    async fn health_and_flush_still_want_200_and_say_why_not() {
        let a = fake_agent(Some(http("202 Accepted", r#"{"uploaded": 1}"#))).await;
        let why = bad_answer(prober(a.addr).flush_logs(&target(None)).await);
        assert_eq!(why, "HTTP 202 Accepted, expected 200");
        let a = fake_agent(Some(http(
            "500 Internal Server Error",
            r#"{"error": "disk full"}"#,
        )))
        .await;
        let why = bad_answer(prober(a.addr).flush_logs(&target(None)).await);
        assert_eq!(why, "HTTP 500 Internal Server Error, expected 200: disk full");
    }

    #[tokio::test]
    async fn a_restart_that_is_not_answered_times_out() {
        let a = fake_agent(None).await;
        let result = prober(a.addr).restart(&target(None), Some("planner")).await;
        assert_eq!(result, Err(ProbeError::Timeout(300)));
    }

    #[tokio::test]
    async fn a_restart_is_refused_off_loopback_without_connecting() {
        let agents = HttpAgents::new(Resolver::PrivateIp { port: 8085 })
            .allow_remote(false)
            .with_restart_timeout(Duration::from_millis(300));
        let result = agents.restart(&target(Some("10.0.0.5")), None).await;
        assert_eq!(result, Err(ProbeError::Refused("10.0.0.5:8085".into())));
        let none = HttpAgents::new(Resolver::Directory(AgentDirectory::new()));
        assert_eq!(
            none.restart(&target(None), None).await,
            Err(ProbeError::NoAddress)
        );
    }

    #[test]
    fn agent_messages_are_found_and_cut() {
        assert_eq!(agent_message(br#"{"error": "nope"}"#), Some("nope".into()));
        assert_eq!(
            agent_message(br#"{"error": {"code": "X", "message": "deeper"}}"#),
            Some("deeper".into())
        );
        assert_eq!(agent_message(br#"{"message": "plain"}"#), Some("plain".into()));
        assert_eq!(agent_message(br#"{"other": 1}"#), None);
        assert_eq!(agent_message(b""), None);
        let long = agent_message("é".repeat(2 * MAX_MESSAGE).as_bytes()).unwrap();
        assert_eq!(long.chars().count(), MAX_MESSAGE + 1);
        assert!(long.ends_with('…'));
    }
}
