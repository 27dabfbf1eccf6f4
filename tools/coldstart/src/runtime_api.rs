//! A stand-in for the Lambda Runtime API (version `2018-06-01`) on 127.0.0.1,
//! for one cold start: it hands one event to one process and records when the
//! process asked for it and when it answered.
//!
//! - `GET /2018-06-01/runtime/invocation/next`: the first call gets the event
//!   with the headers `lambda_runtime` reads (`Lambda-Runtime-Aws-Request-Id`
//!   and `Lambda-Runtime-Deadline-Ms`, which it requires, and
//!   `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`). Later
//!   calls wait until the run is over, as a frozen Lambda environment waits
//!   for an event that does not come.
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../error`: the
//!   outcome; `202 {"status":"OK"}` as Lambda answers. An id that was not
//!   handed out is `400` and a failed run.
//! - `POST /2018-06-01/runtime/init/error`: the runtime failed to start.
//!
//! Only the first outcome counts.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The header the runtime names an error's type in.
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";

/// The one invocation a stand-in hands out.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`; it appears in the response's path.
    pub request_id: String,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// How long the function may take from the moment the event is handed
    /// out: `Lambda-Runtime-Deadline-Ms` is then plus this.
    pub timeout: Duration,
    /// The event (JSON).
    pub event: Vec<u8>,
}

/// What the process answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's result (`.../response`).
    Response(String),
    /// The handler failed (`.../error`), or answered for a request id that
    /// was not handed out.
    Error { error_type: String, body: String },
    /// The runtime failed before it asked for an event (`/init/error`).
    InitError { error_type: String, body: String },
}

/// When things happened, as the stand-in saw them.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The first `GET .../invocation/next` arrived.
    pub first_next: Option<Instant>,
    /// The event was handed out (the answer to that call was made).
    pub handed_out: Option<Instant>,
    /// The first outcome arrived, its body read in full.
    pub outcome: Option<(Instant, Outcome)>,
}

struct Shared {
    invocation: Invocation,
    timeline: Mutex<Timeline>,
    /// True once an outcome is in.
    answered: watch::Sender<bool>,
    /// True once the run is over: waiting `GET .../next` calls return.
    over: watch::Sender<bool>,
}

impl Shared {
    fn record(&self, outcome: Outcome) {
        let at = Instant::now();
        let mut timeline = self.timeline.lock().expect("timeline lock");
        if timeline.outcome.is_none() {
            timeline.outcome = Some((at, outcome));
            self.answered.send_replace(true);
        }
    }
}

/// A running stand-in; it stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on an ephemeral port of 127.0.0.1 and serves `invocation`.
    pub async fn start(invocation: Invocation) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            invocation,
            timeline: Mutex::default(),
            answered: watch::Sender::new(false),
            over: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted (on drop).
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi { addr, shared, server })
    }

    /// `AWS_LAMBDA_RUNTIME_API`: host and port, no scheme.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns once an outcome is in.
    pub async fn answered(&self) {
        let mut answered = self.shared.answered.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = answered.wait_for(|a| *a).await;
    }

    /// What happened so far.
    pub fn timeline(&self) -> Timeline {
        self.shared.timeline.lock().expect("timeline lock").clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Let waiting `GET .../next` calls finish (their process is gone by
        // now), so that no connection task outlives the run.
        self.shared.over.send_replace(true);
        self.server.abort();
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let first = {
        let mut timeline = shared.timeline.lock().expect("timeline lock");
        let first = timeline.first_next.is_none();
        if first {
            timeline.first_next = Some(Instant::now());
        }
        first
    };
    if !first {
        let mut over = shared.over.subscribe();
        let _ = over.wait_for(|o| *o).await;
        return StatusCode::GONE.into_response();
    }
    let inv = &shared.invocation;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let deadline = (now + inv.timeout).as_millis();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        // The values are ours (ids, numbers, an ARN): always valid header text.
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.request_id.clone());
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put("lambda-runtime-invoked-function-arn", inv.function_arn.clone());
    // X-Ray's form: Root=1-<epoch seconds, 8 hex>-<24 hex>.
    put(
        "lambda-runtime-trace-id",
        format!("Root=1-{:08x}-{:024x};Sampled=0", now.as_secs(), now.as_nanos()),
    );
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    shared.timeline.lock().expect("timeline lock").handed_out = Some(Instant::now());
    (StatusCode::OK, headers, inv.event.clone()).into_response()
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get(ERROR_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "(no Lambda-Runtime-Function-Error-Type)".into())
}

fn unknown_request(shared: &Shared, id: &str) -> Response {
    shared.record(Outcome::Error {
        error_type: "coldstart.UnknownRequestId".into(),
        body: format!(
            "an answer for request {id}, but the request handed out was {}",
            shared.invocation.request_id
        ),
    });
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "errorMessage": "Invalid request ID", "errorType": "InvalidRequestID" })),
    )
        .into_response()
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    if id != shared.invocation.request_id {
        return unknown_request(&shared, &id);
    }
    shared.record(Outcome::Response(String::from_utf8_lossy(&body).into_owned()));
    accepted()
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if id != shared.invocation.request_id {
        return unknown_request(&shared, &id);
    }
    shared.record(Outcome::Error {
        error_type: error_type(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    accepted()
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.record(Outcome::InitError {
        error_type: error_type(&headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    accepted()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// One HTTP/1.1 exchange; returns the status line, headers and body as text.
    async fn call(addr: SocketAddr, head: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    fn invocation() -> Invocation {
        Invocation {
            request_id: "req-1".into(),
            function_arn: "arn:aws:lambda:us-west-2:123456789012:function:f".into(),
            timeout: Duration::from_secs(60),
            event: br#"{"x":1}"#.to_vec(),
        }
    }

    #[tokio::test]
    async fn the_event_goes_out_once_with_the_headers_lambda_runtime_requires() {
        let api = RuntimeApi::start(invocation()).await.unwrap();
        let answer = call(api.addr(), "GET /2018-06-01/runtime/invocation/next HTTP/1.1", "").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        for header in [
            "lambda-runtime-aws-request-id: req-1",
            "lambda-runtime-deadline-ms: ",
            "lambda-runtime-invoked-function-arn: arn:aws:lambda:",
            "lambda-runtime-trace-id: Root=1-",
        ] {
            assert!(answer.contains(header), "{header} in {answer}");
        }
        assert!(answer.ends_with(r#"{"x":1}"#), "{answer}");
        let t = api.timeline();
        assert!(t.first_next.is_some() && t.handed_out.is_some() && t.outcome.is_none());
    }

    #[tokio::test]
    async fn an_error_is_recorded_with_its_type_and_only_the_first_outcome_counts() {
        let api = RuntimeApi::start(invocation()).await.unwrap();
        let answer = call(
            api.addr(),
            "POST /2018-06-01/runtime/invocation/req-1/error HTTP/1.1\r\nLambda-Runtime-Function-Error-Type: unhandled",
            r#"{"errorType":"E","errorMessage":"boom"}"#,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        api.answered().await;
        let late = call(
            api.addr(),
            "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1",
            "{}",
        )
        .await;
        assert!(late.starts_with("HTTP/1.1 202"), "{late}");
        assert_eq!(
            api.timeline().outcome.map(|(_, o)| o),
            Some(Outcome::Error {
                error_type: "unhandled".into(),
                body: r#"{"errorType":"E","errorMessage":"boom"}"#.into()
            })
        );
    }

    #[tokio::test]
    async fn an_answer_for_another_request_is_refused_and_fails_the_run() {
        let api = RuntimeApi::start(invocation()).await.unwrap();
        let answer = call(
            api.addr(),
            "POST /2018-06-01/runtime/invocation/req-2/response HTTP/1.1",
            "{}",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(matches!(
            api.timeline().outcome,
            Some((_, Outcome::Error { ref error_type, .. })) if error_type == "coldstart.UnknownRequestId"
        ));
    }
}
