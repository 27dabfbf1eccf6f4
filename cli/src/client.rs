//! HTTP client of the DM REST API described in `docs/api.md`. It authenticates
//! each request (a bearer token, or a SigV4 signature: see `auth`), sends an
//! `Idempotency-Key` on every `POST`, reads the JSON answer, and turns a 4xx or
//! 5xx answer into an [`ApiError`] built from the documented error body. A
//! transport failure that may have reached the server (a timeout, a reset
//! connection) retries a `POST` with the same key, which the API makes safe.

use std::fmt;
use std::io::ErrorKind;
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::http::{Method, Request, Response};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body};

use crate::auth::Auth;

/// How many times a `POST` is sent again after a transport failure.
const POST_RETRIES: u64 = 2;

/// An error answer of the API: `{"error": {"code", "field"?, "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    /// Reads the documented error body; anything else (a proxy's HTML page, an
    /// empty body) becomes the message as it is, so the user still sees it.
    pub fn from_body(status: u16, body: &str) -> Self {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let message = text("message").unwrap_or_else(|| {
            let body = body.trim();
            if body.is_empty() {
                "the server gave no reason".to_owned()
            } else {
                body.to_owned()
            }
        });
        ApiError {
            status,
            code: text("code"),
            field: text("field"),
            message,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

/// A connection to one DM endpoint.
pub struct Client {
    agent: Agent,
    endpoint: String,
    auth: Auth,
}

impl Client {
    /// `endpoint` is the base URL, such as `http://127.0.0.1:8080` or
    /// `https://ID.execute-api.REGION.amazonaws.com`; routes are appended to it.
    pub fn new(endpoint: &str, auth: Auth) -> Result<Self> {
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        let https = endpoint.starts_with("https://");
        if !https && !endpoint.starts_with("http://") {
            bail!("the endpoint {endpoint:?} must be a URL that starts with http:// or https://");
        }
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent(format!("ocadm/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(https)?)
            .build()
            .into();
        Ok(Client {
            agent,
            endpoint,
            auth,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.get_as(path)
    }

    /// A `GET` whose answer is read as `T`, such as an [`crate::ordered::OrderedJson`]
    /// that keeps the server's key order.
    pub fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.finish(self.send(Method::GET, path, None, None)?)
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.finish(self.send(Method::DELETE, path, None, None)?)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.finish(self.send(Method::PATCH, path, Some(body), None)?)
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.finish(self.send(Method::PUT, path, Some(body), None)?)
    }

    /// Sends a `POST` with a fresh `Idempotency-Key`, and sends it again with the
    /// same key when it may have reached the server without an answer coming back.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let key = idempotency_key();
        let mut attempt = 0;
        loop {
            match self.send(Method::POST, path, Some(body), Some(&key))? {
                Err(e) if attempt < POST_RETRIES && may_have_reached_server(&e) => {
                    attempt += 1;
                    sleep(Duration::from_millis(500 * attempt));
                }
                result => return self.finish(result),
            }
        }
    }

    /// Sends one request, authenticated. The outer error is one of ocadm's own
    /// (no credentials to sign with); the inner one is the transport's.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Response<Body>, ureq::Error>> {
        let url = self.url(path);
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .context("encoding the request body")?;
        let mut headers: Vec<(String, String)> = Vec::new();
        if bytes.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key".into(), key.into()));
        }
        match &self.auth {
            Auth::Bearer(Some(token)) => headers.push(("authorization".into(), format!("Bearer {token}"))),
            Auth::Bearer(None) => {}
            Auth::SigV4(signer) => {
                // The signature covers the method, the path and query, the
                // host, the headers above and the exact body bytes sent below.
                let signed: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let added = signer.sign(
                    method.as_str(),
                    &url,
                    &signed,
                    bytes.as_deref().unwrap_or_default(),
                )?;
                headers.extend(added);
            }
        }
        Ok(self.run(method, &url, &headers, bytes))
    }

    fn run(
        &self,
        method: Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response<Body>, ureq::Error> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match body {
            Some(bytes) => self.agent.run(request.body(bytes)?),
            None => self.agent.run(request.body(())?),
        }
    }

    fn finish<T: DeserializeOwned>(&self, result: Result<Response<Body>, ureq::Error>) -> Result<T> {
        let mut response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("could not read the answer of {}", self.endpoint))?;
        if status >= 400 {
            return Err(ApiError::from_body(status, &text).into());
        }
        serde_json::from_str(&text)
            .with_context(|| format!("the server answered HTTP {status} with a body that is not JSON"))
    }

    fn transport_error(&self, e: ureq::Error) -> anyhow::Error {
        let unreachable = match &e {
            ureq::Error::Io(io) => matches!(
                io.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
            ),
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
            _ => false,
        };
        if unreachable {
            anyhow!(
                "could not reach the DM at {} ({e}); for a local DM run `dm-local up` and `source .dm-local/env`, or set OCADM_ENDPOINT",
                self.endpoint
            )
        } else {
            anyhow!(e).context(format!("the request to {} failed", self.endpoint))
        }
    }
}

/// TLS by rustls on the aws-lc-rs provider (the one the AWS SDK builds), with
/// the platform's root certificates, read only for an https endpoint. A plain
/// http endpoint gets no roots, so that a redirect to https fails instead of
/// trusting anything.
fn tls_config(https: bool) -> Result<TlsConfig> {
    let roots = if https {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none were found".to_owned(), |e| e.to_string());
            bail!(
                "cannot verify https endpoints: no trusted root certificates could be read ({why}); \
                 set SSL_CERT_FILE to a PEM bundle of them"
            );
        }
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect::<Vec<_>>()
    } else {
        Vec::new()
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build())
}

/// True for failures after which the request may have been handled: resending
/// is then only safe because the `Idempotency-Key` is the same.
fn may_have_reached_server(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// A fresh random key, one per write the user asks for.
pub fn idempotency_key() -> String {
    format!("ocadm-{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_with_field() {
        let body = r#"{"error": {"code": "INVALID_FIELD", "field": "numNodes", "message": "numNodes must be between 1 and 100, got 0"}}"#;
        let e = ApiError::from_body(400, body);
        assert_eq!(e.code.as_deref(), Some("INVALID_FIELD"));
        assert_eq!(e.field.as_deref(), Some("numNodes"));
        assert_eq!(
            e.to_string(),
            "numNodes must be between 1 and 100, got 0 (HTTP 400)"
        );
    }

    #[test]
    fn error_body_without_field() {
        let body = r#"{"error": {"code": "NOT_FOUND", "message": "no cluster 9"}}"#;
        let e = ApiError::from_body(404, body);
        assert_eq!(e.field, None);
        assert_eq!(e.message, "no cluster 9");
    }

    #[test]
    fn error_body_that_is_not_the_contract() {
        let e = ApiError::from_body(502, "<html>Bad Gateway</html>\n");
        assert_eq!(e.message, "<html>Bad Gateway</html>");
        assert_eq!(e.code, None);
        assert_eq!(ApiError::from_body(500, "").message, "the server gave no reason");
    }

    #[test]
    fn endpoints() {
        let c = Client::new("http://127.0.0.1:8085/", Auth::Bearer(None)).unwrap();
        assert_eq!(c.url("/v1/status"), "http://127.0.0.1:8085/v1/status");
        assert!(matches!(c.auth, Auth::Bearer(None)));
        let e = Client::new("127.0.0.1:8085", Auth::Bearer(None))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
        let c = Client::new(
            "https://a1b2c3d4e5.execute-api.us-west-2.amazonaws.com/",
            Auth::Bearer(None),
        )
        .unwrap();
        assert_eq!(
            c.url("/v1/status"),
            "https://a1b2c3d4e5.execute-api.us-west-2.amazonaws.com/v1/status"
        );
        let env = crate::auth::AuthEnv::default();
        let empty = crate::auth::Auth::choose("http://x", Some(String::new()), &env).unwrap();
        assert!(matches!(
            Client::new("http://x", empty).unwrap().auth,
            Auth::Bearer(None)
        ));
    }

    #[test]
    fn keys_are_fresh() {
        let (a, b) = (idempotency_key(), idempotency_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), "ocadm-".len() + 32);
    }
}
