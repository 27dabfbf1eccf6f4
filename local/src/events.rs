//! `dm-local event --region R FILE`: delivers an EventBridge event to a running
//! runner, as AWS would deliver it to region R's functions. `dm-local up` serves
//! a small control API on 127.0.0.1 for it; its URL and token are in
//! `<data-dir>/events.json`, readable only by its owner.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /events` | `{"region": R, "event": {...}}` | `{"region": R, "answer": <the handler's answer>}` |
//!
//! Errors are `{"error": {"code", "field"?, "message"}}` with a 4xx status: an
//! unknown region, or an event no rule of the region matches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::region::Handlers;

/// The file, under the data directory, that tells `dm-local event` where to send.
pub const EVENTS_FILE: &str = "events.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventsFile {
    url: String,
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivery {
    region: String,
    event: Value,
}

#[derive(Clone)]
struct Server {
    token: Arc<String>,
    regions: Arc<BTreeMap<String, Handlers>>,
}

fn refuse(status: StatusCode, field: Option<&str>, message: String) -> Response {
    let mut error = json!({ "code": if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "INVALID_EVENT" }, "message": message });
    if let Some(f) = field {
        error["field"] = json!(f);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

async fn deliver(State(s): State<Server>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            None,
            "the token of events.json is required".into(),
        );
    }
    let d: Delivery = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                None,
                format!("expected {{\"region\", \"event\"}}: {e}"),
            )
        }
    };
    let Some(handlers) = s.regions.get(&d.region) else {
        return refuse(
            StatusCode::NOT_FOUND,
            Some("region"),
            format!(
                "{} is not a region of this runner; its regions: {}",
                d.region,
                s.regions.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    };
    match handlers.deliver(&d.event).await {
        Ok(answer) => Json(json!({ "region": d.region, "answer": answer })).into_response(),
        Err(why) => refuse(StatusCode::UNPROCESSABLE_ENTITY, Some("event"), why),
    }
}

/// The running control API; removes its file when dropped.
pub struct EventServer {
    file: PathBuf,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for EventServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        self._task.abort();
    }
}

/// Serves `POST /events` for `regions`, and writes `<data_dir>/events.json`.
pub async fn serve(data_dir: &Path, regions: BTreeMap<String, Handlers>) -> Result<EventServer> {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Server {
        token: Arc::new(token.clone()),
        regions: Arc::new(regions),
    };
    let router = Router::new().route("/events", post(deliver)).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let file = data_dir.join(EVENTS_FILE);
    crate::tokens::write_private(&file, &serde_json::to_string(&EventsFile { url, token })?)?;
    Ok(EventServer { file, _task: task })
}

/// Makes `event` a new occurrence of itself: a new id, and the current time in
/// `time` and, for an alarm state change, `detail.state.timestamp`.
pub fn restamp(event: &mut Value) {
    let now = shared::time::now_ms();
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    let hex = hex::encode(id);
    if let Some(obj) = event.as_object_mut() {
        obj.insert(
            "id".into(),
            json!(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )),
        );
        obj.insert("time".into(), json!(shared::time::format_iso(now)));
    }
    if let Some(state) = event.pointer_mut("/detail/state").and_then(Value::as_object_mut) {
        if state.contains_key("timestamp") {
            let iso = shared::time::format_iso(now);
            state.insert(
                "timestamp".into(),
                json!(format!("{}+0000", iso.trim_end_matches('Z'))),
            );
        }
    }
}

/// `dm-local event`: sends the event in `path` to `region` of the runner whose
/// data directory is `data_dir`, and returns the handler's answer.
pub fn send(data_dir: &Path, region: &str, path: &Path, now: bool) -> Result<Value> {
    let control = data_dir.join(EVENTS_FILE);
    let raw = std::fs::read_to_string(&control).with_context(|| {
        format!(
            "no dm-local runner is running with the data directory {} ({} is missing); start one with `dm-local up --data-dir {}`",
            data_dir.display(),
            control.display(),
            data_dir.display()
        )
    })?;
    let file: EventsFile =
        serde_json::from_str(&raw).with_context(|| format!("reading {}", control.display()))?;
    if !file.url.starts_with("http://127.0.0.1:") {
        bail!(
            "{} names {}, which is not on 127.0.0.1",
            control.display(),
            file.url
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the event {}", path.display()))?;
    let mut event: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON event", path.display()))?;
    if now {
        restamp(&mut event);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(900)))
        .build()
        .into();
    let mut answer = agent
        .post(format!("{}/events", file.url))
        .header("Authorization", format!("Bearer {}", file.token))
        .send_json(json!({ "region": region, "event": event }))
        .context("sending the event to the runner")?;
    let status = answer.status().as_u16();
    let body: Value = answer
        .body_mut()
        .read_json()
        .context("reading the runner's answer")?;
    if status != 200 {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("the runner refused the event");
        bail!("{message} (HTTP {status})");
    }
    Ok(body["answer"].clone())
}
