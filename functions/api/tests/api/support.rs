//! What every test of the API needs: a fresh store per backend with an operator,
//! a second operator, a viewer and an admin token; the router driven in-process with
//! `tower::ServiceExt::oneshot`; a kick that records its targets; snapshots to
//! prove that a refused request wrote nothing; a READY environment made the
//! real way (the API, then the reconciler against the emulator); and a cluster
//! marked READY in the store as the reconciler would record it.
//!
//! Listing the region's instance types is by far the slowest call of an
//! environment's first reconcile (seconds per call in moto, and the emulator
//! serves one request at a time), so the list is read from the emulator once per
//! test process and put in each fresh store before its reconcile, as if another
//! environment of the region had been reconciled before. The reconciler's own
//! caching of that list is tested once here, in
//! `clusters::a_cluster_in_an_environment_that_is_not_ready_is_refused_with_409`
//! (and at length in shared's tests).

use std::future::Future;
use std::sync::{Arc, Mutex};

use api::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use shared::cloud::aws::{AwsSettings, Ec2Adapter};
use shared::cloud::Compute;
use shared::config::{Config, S3Location};
use shared::domain::{ClusterStatus, InstanceSize};
use shared::store::{ClusterObservation, ClusterRow, EnvironmentRow, NewNode, Role, Store, StoreError};
use shared::workflows::commands::Limits;
use shared::workflows::reconcile::{Outcome, Target};
use tokio::sync::OnceCell;
use tower::ServiceExt;

pub const OPERATOR: &str = "op-7f3a9c21-operator-token";
pub const OPERATOR_NAME: &str = "olivia-operator";
pub const OPERATOR2: &str = "op-52be11d0-second-operator";
pub const OPERATOR2_NAME: &str = "oscar-operator";
pub const VIEWER: &str = "vw-0c4e8b77-viewer-token";
pub const VIEWER_NAME: &str = "vera-viewer";
pub const ADMIN: &str = "ad-91d2e4f6-admin-token";
pub const ADMIN_NAME: &str = "ada-admin";

pub const MAX_NODES: i64 = 10;
pub const DEFAULT_VERSION: &str = "2.0.0";
pub const REGION: &str = "us-west-2";
pub const NODE_AMI: &str = "ami-12c6146b";

/// Runs `test` once per backend of `testkit::all_backends()`, both at once, each
/// with its own fresh fixture. A failure on either backend fails the test with
/// the backend's name in front of the panic message.
pub async fn on_both_backends<F, Fut>(test: F)
where
    F: Fn(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut runs = Vec::new();
    for (backend, url) in testkit::all_backends().await {
        let fixture = Fixture::new(backend, &url).await;
        runs.push((backend, url, tokio::spawn(test(fixture))));
    }
    let mut failures = Vec::new();
    for (backend, url, run) in runs {
        if let Err(e) = run.await {
            let reason = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(a panic without a message)".to_owned()),
                Err(e) => e.to_string(),
            };
            failures.push(format!("on the {backend} backend ({url}): {reason}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One backend's fresh store, the router's state around it, and an emulator
/// account of its own.
pub struct Fixture {
    pub backend: &'static str,
    pub db_url: String,
    pub store: Store,
    pub state: AppState,
    pub account: String,
    kicks: Arc<Mutex<Vec<Target>>>,
    wakes: Arc<Mutex<Vec<i64>>>,
    runbook_wakes: Arc<Mutex<Vec<i64>>>,
    ready: OnceCell<i64>,
}

impl Fixture {
    pub async fn new(backend: &'static str, db_url: &str) -> Fixture {
        let store = Store::connect(db_url)
            .await
            .unwrap_or_else(|e| panic!("[{backend}] cannot open the test store {db_url}: {e}"));
        for (token, name, role) in [
            (OPERATOR, OPERATOR_NAME, Role::Operator),
            (OPERATOR2, OPERATOR2_NAME, Role::Operator),
            (VIEWER, VIEWER_NAME, Role::Viewer),
            (ADMIN, ADMIN_NAME, Role::Admin),
        ] {
            store
                .add_token(token, name, role)
                .await
                .unwrap_or_else(|e| panic!("[{backend}] add token {name}: {e}"));
        }
        let kicks = Arc::new(Mutex::new(Vec::new()));
        let recorder = kicks.clone();
        let wakes = Arc::new(Mutex::new(Vec::new()));
        let wake_recorder = wakes.clone();
        let runbook_wakes = Arc::new(Mutex::new(Vec::new()));
        let runbook_recorder = runbook_wakes.clone();
        let account = emulator::fresh_account();
        let state = AppState {
            store: store.clone(),
            limits: Limits {
                max_nodes: MAX_NODES,
                default_version: DEFAULT_VERSION.into(),
            },
            kick: Arc::new(move |target| {
                recorder.lock().expect("kick log").push(target);
                Box::pin(async {})
            }),
            diagnostics: api::Diagnostics {
                staging: S3Location::parse(&format!("s3://dm-{account}/staging")).expect("staging location"),
                wake: Arc::new(move |operation| {
                    wake_recorder.lock().expect("wake log").push(operation);
                    Box::pin(async {})
                }),
            },
            run_runbook: Arc::new(move |runbook| {
                runbook_recorder.lock().expect("runbook wake log").push(runbook);
                Box::pin(async {})
            }),
            failover: Arc::new(shared::workflows::failover::SingleRegionDesk {
                region: "us-west-2".into(),
            }),
            run_region_runbook: Arc::new(|_| Box::pin(async {})),
            auth: api::Auth::Tokens,
        };
        Fixture {
            backend,
            db_url: db_url.to_owned(),
            store,
            state,
            account,
            kicks,
            wakes,
            runbook_wakes,
            ready: OnceCell::new(),
        }
    }

    /// How often the API has kicked the reconciler so far.
    pub fn kicks(&self) -> usize {
        self.kicked().len()
    }

    /// The targets the API kicked the reconciler for, in order.
    pub fn kicked(&self) -> Vec<Target> {
        self.kicks.lock().expect("kick log").clone()
    }

    /// The operations the API woke the diagnostics worker for, in order.
    pub fn woken(&self) -> Vec<i64> {
        self.wakes.lock().expect("wake log").clone()
    }

    /// The runbooks the API woke the runbook runner for, in order.
    pub fn runbooks_woken(&self) -> Vec<i64> {
        self.runbook_wakes.lock().expect("runbook wake log").clone()
    }

    /// Sends one request through a freshly built router, as Lambda and dm-local do.
    pub async fn send(&self, req: Req) -> Reply {
        let what = format!("{} {}", req.method, req.path);
        self.send_request(what, req.build()).await
    }

    /// Sends a request built elsewhere (the Lambda path); `what` names it in messages.
    pub async fn send_request(&self, what: String, request: Request<Body>) -> Reply {
        self.send_to(self.state.clone(), what, request).await
    }

    /// Sends a request through a router over another state (another kick).
    pub async fn send_to(&self, state: AppState, what: String, request: Request<Body>) -> Reply {
        let response = api::router(state)
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        Reply::read(self.backend, what, response).await
    }

    /// What a refused request must leave as it was.
    pub async fn snapshot(&self) -> Snapshot {
        let environments = self.store.list_environments().await.expect("list environments");
        let clusters = self.store.list_clusters(None).await.expect("list clusters");
        let mut audit = Vec::new();
        let targets = environments
            .iter()
            .map(|e| format!("environment/{}", e.id))
            .chain(clusters.iter().map(|c| format!("cluster/{}", c.id)));
        for target in targets {
            let n = self.store.audit_of(&target).await.expect("audit log").len();
            audit.push((target, n));
        }
        let mut next_operation = 1;
        loop {
            match self.store.get_operation(next_operation).await {
                Ok(_) => next_operation += 1,
                Err(StoreError::NotFound { .. }) => break,
                Err(e) => panic!("[{}] get operation {next_operation}: {e}", self.backend),
            }
        }
        Snapshot {
            environments,
            clusters,
            audit,
            next_operation,
            kicks: self.kicks(),
            wakes: self.woken().len(),
            runbook_wakes: self.runbooks_woken().len(),
        }
    }

    /// Asserts that nothing was written since `before`: the same environments and
    /// clusters (every column), the same audit log, no new operation, no kick.
    pub async fn assert_nothing_written(&self, before: &Snapshot, after_what: &str) {
        let now = self.snapshot().await;
        let b = self.backend;
        assert_eq!(
            now.environments, before.environments,
            "[{b}] {after_what} changed the environments"
        );
        assert_eq!(
            now.clusters, before.clusters,
            "[{b}] {after_what} changed the clusters"
        );
        assert_eq!(
            now.audit, before.audit,
            "[{b}] {after_what} wrote to the audit log"
        );
        match self.store.get_operation(before.next_operation).await {
            Err(StoreError::NotFound { .. }) => {}
            other => panic!(
                "[{b}] {after_what} recorded operation {}: {other:?}",
                before.next_operation
            ),
        }
        assert_eq!(
            now.kicks, before.kicks,
            "[{b}] {after_what} kicked the reconciler"
        );
        assert_eq!(
            now.wakes, before.wakes,
            "[{b}] {after_what} woke the diagnostics worker"
        );
        assert_eq!(
            now.runbook_wakes, before.runbook_wakes,
            "[{b}] {after_what} woke the runbook runner"
        );
    }

    /// Sends `req`, asserts that it is refused as described and that nothing was
    /// written.
    pub async fn refused(
        &self,
        req: Req,
        status: u16,
        code: &str,
        field: Option<&str>,
        mentions: &[&str],
    ) -> Reply {
        let what = format!(
            "{} {} {}",
            req.method,
            req.path,
            String::from_utf8_lossy(&req.body[..req.body.len().min(200)])
        );
        let before = self.snapshot().await;
        let reply = self.send(req).await;
        reply.assert_error(status, code, field, mentions);
        self.assert_nothing_written(&before, &what).await;
        reply
    }

    /// Creates an environment through the API; answers (operation id, environment id).
    pub async fn create_environment(&self, name: &str) -> (i64, i64) {
        let reply = self
            .send(Req::post("/v1/environments", &environment_body(name)))
            .await;
        reply.assert_status(202);
        (reply.i64_at("/operationId"), reply.i64_at("/environment/id"))
    }

    /// An environment made through the API and reconciled once against the
    /// emulator, so that it is READY and its region's instance types are cached.
    pub async fn make_ready_environment(&self, name: &str) -> i64 {
        if !self
            .store
            .has_instance_types(REGION)
            .await
            .expect("instance types")
        {
            let types = region_instance_types().await;
            self.store
                .put_instance_types(REGION, types)
                .await
                .expect("put instance types");
        }
        self.make_ready_environment_from_scratch(name).await
    }

    /// Like [`Fixture::make_ready_environment`], but the reconciler reads the
    /// region's instance types from the emulator itself when the store has none.
    pub async fn make_ready_environment_from_scratch(&self, name: &str) -> i64 {
        let (_, id) = self.create_environment(name).await;
        self.reconcile_environment(id).await;
        let env = self.store.get_environment(id).await.expect("get environment");
        assert_eq!(
            env.status_code, "READY",
            "[{}] environment {id} did not get ready: {}",
            self.backend, env.status_message
        );
        id
    }

    /// This test's READY environment, made on first use.
    pub async fn ready_environment(&self) -> i64 {
        *self
            .ready
            .get_or_init(|| self.make_ready_environment("ready-env"))
            .await
    }

    /// Runs the real reconciler once for environment `id`, as this fixture's
    /// emulator account.
    pub async fn reconcile_environment(&self, id: i64) {
        let endpoint = emulator_endpoint().await;
        let config = Config {
            db_url: self.db_url.clone(),
            staging: S3Location::parse(&format!("s3://dm-{}/staging", self.account))
                .expect("staging location"),
            max_nodes: MAX_NODES,
            default_version: DEFAULT_VERSION.into(),
            node_ami: NODE_AMI.into(),
            node_instance_profile: None,
            aws_endpoint: Some(endpoint.clone()),
            dns_zone: None,
        };
        let settings = aws_settings(endpoint, &self.account);
        let reconciler = reconciler::build(self.store.clone(), &config, settings, REGION, "test".into());
        match reconciler.reconcile_environment(id).await {
            Ok(Outcome::Reconciled) => {}
            other => panic!("[{}] reconciling environment {id}: {other:?}", self.backend),
        }
    }

    /// Creates a cluster through the API; answers (operation id, cluster id).
    pub async fn create_cluster(&self, body: &Value) -> (i64, i64) {
        let reply = self.send(Req::post("/v1/clusters", body)).await;
        reply.assert_status(202);
        (reply.i64_at("/operationId"), reply.i64_at("/cluster/id"))
    }

    /// Marks cluster `id` READY at its current generation with these nodes in
    /// service, as the reconciler records a cluster it converged (no AWS), so
    /// that the health sweep may judge it.
    pub async fn mark_cluster_ready(&self, id: i64, instance_ids: &[&str]) {
        let b = self.backend;
        let generation = self.cluster(id).await.generation;
        assert!(
            self.store
                .claim_cluster(id, "fixture", 60_000)
                .await
                .expect("claim cluster"),
            "[{b}] cluster {id} is leased"
        );
        let observation = ClusterObservation {
            status: ClusterStatus::Ready,
            message: format!("All {} nodes in service.", instance_ids.len()),
            asg_name: None,
            launch_template_id: None,
            config_uri: None,
            nodes: instance_ids
                .iter()
                .map(|i| NewNode {
                    instance_id: (*i).to_owned(),
                    lifecycle_state: "InService".into(),
                    availability_zone: format!("{REGION}a"),
                })
                .collect(),
            running_services: None,
            endpoint: None,
            observed_generation: Some(generation),
            steps: Vec::new(),
            failure: None,
        };
        self.store
            .record_cluster(id, "fixture", &observation)
            .await
            .unwrap_or_else(|e| panic!("[{b}] record cluster {id}: {e}"));
        self.store
            .release_cluster(id, "fixture", true)
            .await
            .unwrap_or_else(|e| panic!("[{b}] release cluster {id}: {e}"));
    }

    pub async fn cluster(&self, id: i64) -> ClusterRow {
        self.store
            .get_cluster(id)
            .await
            .unwrap_or_else(|e| panic!("[{}] get cluster {id}: {e}", self.backend))
    }
}

/// The shared emulator's endpoint, started on first use (off the async threads:
/// starting it blocks).
async fn emulator_endpoint() -> String {
    tokio::task::spawn_blocking(|| emulator::shared().endpoint().to_owned())
        .await
        .expect("start the emulator")
}

pub fn aws_settings(endpoint: String, account: &str) -> AwsSettings {
    AwsSettings {
        endpoint: Some(endpoint),
        credentials: Some((account.to_owned(), "x".into())),
        max_attempts: None,
    }
}

/// The instance types the emulator offers in [`REGION`], read once per process
/// with the EC2 adapter the reconciler uses.
async fn region_instance_types() -> &'static [(String, InstanceSize)] {
    static TYPES: OnceCell<Vec<(String, InstanceSize)>> = OnceCell::const_new();
    TYPES
        .get_or_init(|| async {
            let adapter = Ec2Adapter::new(aws_settings(
                emulator_endpoint().await,
                &emulator::fresh_account(),
            ));
            let types = adapter
                .instance_types(REGION)
                .await
                .expect("list the emulator's instance types");
            assert!(
                types.iter().any(|(name, _)| name == "t2.large"),
                "the emulator offers no t2.large"
            );
            types
        })
        .await
}

/// The state a refused request must not change.
#[derive(Debug)]
pub struct Snapshot {
    pub environments: Vec<EnvironmentRow>,
    pub clusters: Vec<ClusterRow>,
    pub audit: Vec<(String, usize)>,
    /// The id the next operation would get: it must not exist afterwards.
    pub next_operation: i64,
    pub kicks: usize,
    pub wakes: usize,
    pub runbook_wakes: usize,
}

/// A valid environment spec.
pub fn environment_body(name: &str) -> Value {
    json!({ "name": name, "region": REGION })
}

/// A valid cluster spec, the smallest one.
pub fn cluster_body(environment_id: i64, name: &str) -> Value {
    json!({ "name": name, "environmentId": environment_id, "numNodes": 1, "type": "STANDALONE_CLUSTER" })
}

/// `base` with `key` set to `value`.
pub fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut v = base.clone();
    v[key] = value;
    v
}

pub fn without(base: &Value, key: &str) -> Value {
    let mut v = base.clone();
    v.as_object_mut().expect("an object").remove(key);
    v
}

/// A request to the API. By default it carries the operator's token, or the
/// admin's on the routes that need an admin (`api::required_role`: failovers,
/// drills, the default version), so that a test of something else gets past
/// the role check; `auth.rs` tests the roles themselves, token by token.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    authorization: Option<Vec<u8>>,
    content_type: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: Method, path: &str) -> Req {
        let route = path.split('?').next().unwrap_or(path);
        let token = match api::required_role(&method, route) {
            Role::Admin => ADMIN,
            _ => OPERATOR,
        };
        Req {
            method,
            path: path.to_owned(),
            authorization: Some(format!("Bearer {token}").into_bytes()),
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(path: &str) -> Req {
        Req::new(Method::GET, path)
    }

    pub fn delete(path: &str) -> Req {
        Req::new(Method::DELETE, path)
    }

    pub fn post(path: &str, body: &Value) -> Req {
        Req::new(Method::POST, path).json(body)
    }

    pub fn put(path: &str, body: &Value) -> Req {
        Req::new(Method::PUT, path).json(body)
    }

    pub fn patch(path: &str, body: &Value) -> Req {
        Req::new(Method::PATCH, path).json(body)
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(mut self, body: &Value) -> Req {
        self.body = serde_json::to_vec(body).expect("serialise body");
        self.content_type = Some("application/json".into());
        self
    }

    /// A body sent as is, with `Content-Type: application/json` unless changed.
    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        if self.content_type.is_none() {
            self.content_type = Some("application/json".into());
        }
        self
    }

    pub fn content_type(mut self, content_type: Option<&str>) -> Req {
        self.content_type = content_type.map(str::to_owned);
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn token(mut self, token: &str) -> Req {
        self.authorization = Some(format!("Bearer {token}").into_bytes());
        self
    }

    /// The Authorization header exactly as given, or none.
    pub fn authorization(mut self, raw: Option<&str>) -> Req {
        self.authorization = raw.map(|r| r.as_bytes().to_vec());
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Req {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn idempotency_key(self, key: &str) -> Req {
        self.header("Idempotency-Key", key)
    }

    pub fn build(self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method).uri(self.path.as_str());
        if let Some(auth) = self.authorization {
            builder = builder.header(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(&auth).expect("authorization value"),
            );
        }
        if let Some(ct) = self.content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        for (name, value) in self.headers {
            builder = builder.header(name, HeaderValue::from_bytes(&value).expect("header value"));
        }
        builder.body(Body::from(self.body)).expect("a valid request")
    }
}

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub backend: &'static str,
    /// The request, for messages.
    pub what: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    json: Result<Value, String>,
}

impl Reply {
    async fn read(backend: &'static str, what: String, response: Response) -> Reply {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("read the response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).map_err(|e| e.to_string());
        Reply {
            backend,
            what,
            status: parts.status,
            headers: parts.headers,
            text,
            json,
        }
    }

    fn describe(&self) -> String {
        format!(
            "[{}] {} answered {} {}",
            self.backend, self.what, self.status, self.text
        )
    }

    /// The body as JSON; the response must say it is JSON.
    pub fn json(&self) -> &Value {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "not a JSON response (Content-Type {ct:?}): {}",
            self.describe()
        );
        match &self.json {
            Ok(v) => v,
            Err(e) => panic!("the body is not JSON ({e}): {}", self.describe()),
        }
    }

    pub fn at(&self, pointer: &str) -> &Value {
        self.json()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in the answer: {}", self.describe()))
    }

    pub fn i64_at(&self, pointer: &str) -> i64 {
        self.at(pointer)
            .as_i64()
            .unwrap_or_else(|| panic!("{pointer} is not a whole number: {}", self.describe()))
    }

    pub fn str_at(&self, pointer: &str) -> &str {
        self.at(pointer)
            .as_str()
            .unwrap_or_else(|| panic!("{pointer} is not a string: {}", self.describe()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("a visible header value"))
    }

    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.describe());
        self
    }

    /// Asserts the error shape of docs/api.md: `{"error": {"code", "message",
    /// "field"?}}`, with `field` only when a field is at fault, and a message that
    /// names every one of `mentions`.
    pub fn assert_error(&self, status: u16, code: &str, field: Option<&str>, mentions: &[&str]) {
        self.assert_status(status);
        let body = self.json();
        let keys: Vec<&String> = body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(
            keys,
            ["error"],
            "the body must hold only \"error\": {}",
            self.describe()
        );
        let error = &body["error"];
        assert_eq!(error["code"], json!(code), "error.code: {}", self.describe());
        match field {
            Some(f) => assert_eq!(
                error.get("field"),
                Some(&json!(f)),
                "error.field: {}",
                self.describe()
            ),
            None => assert_eq!(
                error.get("field"),
                None,
                "no field is at fault, yet: {}",
                self.describe()
            ),
        }
        let message = error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error.message is not a string: {}", self.describe()));
        for m in mentions {
            assert!(
                message.contains(m),
                "error.message does not mention {m:?}: {}",
                self.describe()
            );
        }
        if let Some(obj) = error.as_object() {
            let extra: Vec<&String> = obj
                .keys()
                .filter(|k| !["code", "message", "field"].contains(&k.as_str()))
                .collect();
            assert!(
                extra.is_empty(),
                "unexpected keys {extra:?} in the error: {}",
                self.describe()
            );
        }
    }
}
