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

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, USER_AGENT};
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
/// How long a health probe may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a log flush may take: the agent answers once its uploads are done.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
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

    /// One request, its answer's status checked and its body read, within `timeout`.
    async fn call(
        &self,
        target: &AgentTarget,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProbeError> {
        let addr = self.address_of(target)?;
        let exchange = exchange(addr, method, path, self.max_body);
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
        let body = self.call(node, Method::GET, HEALTH_PATH, self.timeout).await?;
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
            .call(node, Method::POST, FLUSH_PATH, self.flush_timeout)
            .await?;
        let flushed: Flushed = parse(&body)?;
        tracing::debug!(instance = %node.instance_id, uploaded = flushed.uploaded, "agent flushed its logs");
        Ok(())
    }
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
async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    max_body: usize,
) -> Result<Vec<u8>, ProbeError> {
    let unreachable =
        |what: &str, e: &dyn std::fmt::Display| ProbeError::Unreachable(format!("{what} {addr}: {e}"));
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable("connecting to", &e))?;
    let (mut sender, connection) = http1::Builder::new()
        .max_buf_size(max_body.saturating_add(16 * 1024))
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable("talking to", &e))?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(CONNECTION, "close")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("okera-dm/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| ProbeError::Unreachable(format!("building the request to {addr}: {e}")))?;
    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable("asking", &e))?;
        read_answer(response, max_body).await.map_err(|e| match e {
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

/// Checks the status, then reads the body up to `max_body` bytes.
async fn read_answer(response: Response<Incoming>, max_body: usize) -> Result<Vec<u8>, Failure> {
    if response.status() != StatusCode::OK {
        return Err(Failure::Probe(ProbeError::BadAnswer(format!(
            "HTTP {}, expected 200",
            response.status()
        ))));
    }
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
}
