//! IAM mode (`OKERA_AUTH=iam`), as the API runs in Lambda behind API Gateway's
//! `AWS_IAM` authorizer: the caller is the `userArn` of the request context that
//! `lambda_http` reads from the event, and `OKERA_IAM_ROLES` gives it its role.
//! Every request here is an API Gateway HTTP API event (payload 2.0) read by
//! `lambda_http::request::from_str`, the path the router sees in Lambda.

use std::sync::Arc;

use api::{AppState, Auth, IamRoles};
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};

use crate::support::*;

const ACCOUNT: &str = "123456789012";

/// Who has which role: a role with a path (its sessions' ARNs have none), a
/// role without one, and a user.
fn roles() -> String {
    format!(
        "arn:aws:iam::{ACCOUNT}:role/dm/dm-admins=admin,\
         arn:aws:iam::{ACCOUNT}:role/oncall=operator,\
         arn:aws:iam::{ACCOUNT}:user/auditors/vic=viewer"
    )
}

fn admin_session() -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/dm-admins/alice")
}

fn operator_session() -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/oncall/bob@example.com")
}

fn viewer_user() -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/auditors/vic")
}

/// The fixture's state in IAM mode.
fn iam_state(fx: &Fixture) -> AppState {
    let roles = IamRoles::parse(&roles()).expect("the test's OKERA_IAM_ROLES");
    AppState {
        auth: Auth::Iam(Arc::new(roles)),
        ..fx.state.clone()
    }
}

/// What the request context carries about the caller.
#[derive(Clone, Copy)]
enum Authorizer<'a> {
    /// `authorizer.iam` with this `userArn`.
    Iam(&'a str),
    /// `authorizer.iam` without a `userArn`.
    IamWithoutArn,
    /// No `authorizer` at all (a route without the IAM authorizer).
    None,
}

/// An API Gateway HTTP API event for `method path`, as AWS sends it once the
/// IAM authorizer has checked the signature.
fn event(method: &Method, path: &str, body: Option<&Value>, authorizer: Authorizer) -> String {
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let host = "a1b2c3d4e5.execute-api.us-west-2.amazonaws.com";
    let mut context = json!({
        "accountId": ACCOUNT,
        "apiId": "a1b2c3d4e5",
        "domainName": host,
        "domainPrefix": "a1b2c3d4e5",
        "http": {
            "method": method.as_str(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10",
            "userAgent": "ocadm/0.1.0"
        },
        "requestId": "dG9rZW5zLWlhbQ=",
        "routeKey": "$default",
        "stage": "$default",
        "time": "25/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1795608000000i64
    });
    let iam = |arn: Option<&str>| {
        let mut iam = json!({
            "accessKey": "ASIAEXAMPLEACCESSKEY",
            "accountId": ACCOUNT,
            "callerId": "AROAEXAMPLEROLEID:alice",
            "cognitoIdentity": null,
            "principalOrgId": "o-exampleorg",
            "userId": "AROAEXAMPLEROLEID:alice"
        });
        if let Some(arn) = arn {
            iam["userArn"] = json!(arn);
        }
        json!({ "iam": iam })
    };
    match authorizer {
        Authorizer::Iam(arn) => context["authorizer"] = iam(Some(arn)),
        Authorizer::IamWithoutArn => context["authorizer"] = iam(None),
        Authorizer::None => {}
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {
            "accept": "application/json",
            // The SigV4 signature that API Gateway checked; the API never reads it.
            "authorization": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEACCESSKEY/20261125/us-west-2/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000",
            "host": host,
            "x-amz-date": "20261125T120000Z",
        },
        "requestContext": context,
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
        event["headers"]["content-type"] = json!("application/json");
    }
    event.to_string()
}

/// The event as the router sees it in Lambda.
fn lambda_request(
    method: &Method,
    path: &str,
    body: Option<&Value>,
    authorizer: Authorizer,
) -> Request<Body> {
    let text = event(method, path, body, authorizer);
    let request = lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("lambda_http cannot read {text}: {e}"));
    assert!(
        lambda_http::RequestExt::request_context_ref(&request).is_some(),
        "lambda_http keeps the request context"
    );
    request.map(Body::new)
}

async fn send(
    fx: &Fixture,
    method: Method,
    path: &str,
    body: Option<&Value>,
    authorizer: Authorizer<'_>,
) -> Reply {
    let who = match authorizer {
        Authorizer::Iam(arn) => arn.to_owned(),
        Authorizer::IamWithoutArn => "(no userArn)".into(),
        Authorizer::None => "(no authorizer)".into(),
    };
    let what = format!("{method} {path} as {who}");
    let request = lambda_request(&method, path, body, authorizer);
    fx.send_to(iam_state(fx), what, request).await
}

/// Sends the request, which must be refused as described, and checks that it
/// wrote nothing.
#[allow(clippy::too_many_arguments)]
async fn refused(
    fx: &Fixture,
    method: Method,
    path: &str,
    body: Option<&Value>,
    authorizer: Authorizer<'_>,
    status: u16,
    code: &str,
    mentions: &[&str],
) {
    let before = fx.snapshot().await;
    let reply = send(fx, method.clone(), path, body, authorizer).await;
    reply.assert_error(status, code, None, mentions);
    fx.assert_nothing_written(&before, &reply.what).await;
}

#[tokio::test]
async fn each_mapped_principal_may_do_what_its_role_may_and_no_more() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        let (admin, operator, viewer) = (admin_session(), operator_session(), viewer_user());
        let env_body = environment_body("iam-env");

        // Reads: everyone with a role.
        for who in [&admin, &operator, &viewer] {
            for path in [
                "/v1/status",
                "/v1/environments",
                "/v1/settings/default-version",
                "/v1/drills",
            ] {
                send(&fx, Method::GET, path, None, Authorizer::Iam(who))
                    .await
                    .assert_status(200);
            }
        }

        // Operator writes: not the viewer; the operator and the admin.
        refused(
            &fx,
            Method::POST,
            "/v1/environments",
            Some(&env_body),
            Authorizer::Iam(&viewer),
            403,
            "FORBIDDEN",
            &[
                &viewer,
                "the viewer role",
                &format!("OKERA_IAM_ROLES ({viewer}=viewer)"),
                "needs the operator role or above",
                "map it to operator in OKERA_IAM_ROLES",
            ],
        )
        .await;
        for (who, name) in [(&operator, "by-operator"), (&admin, "by-admin")] {
            let reply = send(
                &fx,
                Method::POST,
                "/v1/environments",
                Some(&environment_body(name)),
                Authorizer::Iam(who),
            )
            .await;
            reply.assert_status(202);
            assert_eq!(reply.str_at("/environment/name"), name, "[{b}]");
        }

        // Admin writes: only the admin.
        let admin_writes = [
            (
                Method::PUT,
                "/v1/settings/default-version",
                json!({ "version": "2.1.0" }),
            ),
            (Method::POST, "/v1/failover", json!({ "to": "us-east-1" })),
            (Method::POST, "/v1/drills", json!({ "to": "us-east-1" })),
        ];
        for (method, path, body) in &admin_writes {
            for (who, role) in [(&viewer, "viewer"), (&operator, "operator")] {
                refused(
                    &fx,
                    method.clone(),
                    path,
                    Some(body),
                    Authorizer::Iam(who),
                    403,
                    "FORBIDDEN",
                    &[
                        who,
                        &format!("the {role} role"),
                        "needs the admin role",
                        "map it to admin",
                    ],
                )
                .await;
            }
        }
        // The operator's role came from the role's entry, path and all.
        refused(
            &fx,
            Method::PUT,
            "/v1/settings/default-version",
            Some(&json!({ "version": "2.1.0" })),
            Authorizer::Iam(&operator),
            403,
            "FORBIDDEN",
            &[&format!("arn:aws:iam::{ACCOUNT}:role/oncall=operator")],
        )
        .await;
        let unchanged = send(
            &fx,
            Method::GET,
            "/v1/settings/default-version",
            None,
            Authorizer::Iam(&viewer),
        )
        .await;
        assert_eq!(unchanged.json(), &json!({ "version": DEFAULT_VERSION }), "[{b}]");

        let set = send(
            &fx,
            Method::PUT,
            "/v1/settings/default-version",
            Some(&json!({ "version": "2.1.0" })),
            Authorizer::Iam(&admin),
        )
        .await;
        set.assert_status(200);
        assert_eq!(set.json(), &json!({ "version": "2.1.0" }), "[{b}]");
        // One DM region: the admin gets past the role check, and the failover
        // desk refuses with its own reason.
        for (method, path, body) in &admin_writes[1..] {
            let reply = send(&fx, method.clone(), path, Some(body), Authorizer::Iam(&admin)).await;
            reply.assert_error(409, "FAILOVER_REFUSED", None, &["this DM runs in one region"]);
        }
    })
    .await;
}

#[tokio::test]
async fn a_session_of_a_mapped_role_has_its_role_whatever_the_session_and_the_role_path() {
    on_both_backends(|fx| async move {
        // dm-admins is mapped as role/dm/dm-admins; its sessions arrive without
        // the path, under any session name, and the role name in any case.
        for session in [
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/dm-admins/alice"),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/dm-admins/i-0123456789abcdef0"),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/DM-Admins/carol"),
        ] {
            let reply = send(
                &fx,
                Method::PUT,
                "/v1/settings/default-version",
                Some(&json!({ "version": "2.0.1" })),
                Authorizer::Iam(&session),
            )
            .await;
            reply.assert_status(200);
        }
    })
    .await;
}

#[tokio::test]
async fn an_unknown_principal_is_refused_with_403_naming_it_and_the_variable_and_nothing_is_written() {
    on_both_backends(|fx| async move {
        let stranger = format!("arn:aws:sts::{ACCOUNT}:assumed-role/developers/dave");
        let other_account = "arn:aws:sts::210987654321:assumed-role/oncall/bob".to_owned();
        let other_user = format!("arn:aws:iam::{ACCOUNT}:user/vic");
        let cases = [
            (
                stranger.clone(),
                format!("add arn:aws:iam::{ACCOUNT}:role/developers=viewer (or operator, or admin) to OKERA_IAM_ROLES"),
            ),
            (
                other_account.clone(),
                "add arn:aws:iam::210987654321:role/oncall=viewer".to_owned(),
            ),
            // The mapped vic has a path; this one is another user.
            (other_user.clone(), format!("add {other_user}=viewer")),
        ];
        for (arn, fix) in &cases {
            for (method, path, body) in [
                (Method::GET, "/v1/status", None),
                (Method::GET, "/v1/clusters", None),
                (Method::POST, "/v1/environments", Some(environment_body("stranger"))),
                (Method::PUT, "/v1/settings/default-version", Some(json!({ "version": "2.1.0" }))),
            ] {
                refused(
                    &fx,
                    method,
                    path,
                    body.as_ref(),
                    Authorizer::Iam(arn),
                    403,
                    "FORBIDDEN",
                    &[arn, "has no role in this DM", fix, "IamRoles"],
                )
                .await;
            }
        }
        for arn in [
            format!("arn:aws:iam::{ACCOUNT}:root"),
            format!("arn:aws:sts::{ACCOUNT}:federated-user/erin"),
        ] {
            refused(
                &fx,
                Method::POST,
                "/v1/environments",
                Some(&environment_body("stranger")),
                Authorizer::Iam(&arn),
                403,
                "FORBIDDEN",
                &[&arn, "cannot have one", "IAM roles (and their sessions) and IAM users only"],
            )
            .await;
        }
        let long = format!("arn:aws:iam::{ACCOUNT}:user/{}/vic", "p".repeat(600));
        refused(
            &fx,
            Method::GET,
            "/v1/status",
            None,
            Authorizer::Iam(&long),
            403,
            "FORBIDDEN",
            &["more than the 512 the audit log records"],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_request_without_an_iam_caller_is_refused_with_401_naming_what_is_missing() {
    on_both_backends(|fx| async move {
        let body = environment_body("nobody");
        for method in [Method::GET, Method::POST] {
            let body = (method == Method::POST).then_some(&body);
            refused(
                &fx,
                method.clone(),
                "/v1/environments",
                body,
                Authorizer::None,
                401,
                "UNAUTHENTICATED",
                &[
                    "no IAM caller",
                    "no authorizer.iam",
                    "requestContext.authorizer.iam.userArn",
                    "AWS_IAM",
                ],
            )
            .await;
            refused(
                &fx,
                method.clone(),
                "/v1/environments",
                body,
                Authorizer::IamWithoutArn,
                401,
                "UNAUTHENTICATED",
                &["no IAM caller", "requestContext.authorizer.iam.userArn"],
            )
            .await;
            refused(
                &fx,
                method.clone(),
                "/v1/environments",
                body,
                Authorizer::Iam("  "),
                401,
                "UNAUTHENTICATED",
                &["requestContext.authorizer.iam.userArn"],
            )
            .await;
        }
        // A request that did not come through API Gateway has no request
        // context at all; a bearer token does not stand in for one.
        for req in [
            Req::get("/v1/status"),
            Req::post("/v1/environments", &environment_body("nobody")),
            Req::get("/v1/status").authorization(None),
        ] {
            let what = format!("{} {} without a request context", req.method, req.path);
            let before = fx.snapshot().await;
            let reply = fx.send_to(iam_state(&fx), what.clone(), req.build()).await;
            reply.assert_error(
                401,
                "UNAUTHENTICATED",
                None,
                &["no API Gateway request context", "OKERA_AUTH=iam", "SigV4"],
            );
            fx.assert_nothing_written(&before, &what).await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_operation_and_the_audit_row_of_a_write_name_the_full_caller_arn() {
    on_both_backends(|fx| async move {
        let b = fx.backend;
        // Longer than the 128 characters the principal columns first held: a
        // 64-character role name and a 64-character session name.
        let role = format!("oncall-{}", "r".repeat(57));
        let session = format!("{}@example.com", "s".repeat(52));
        let arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}");
        assert!(arn.len() > 160, "{}", arn.len());
        let roles = IamRoles::parse(&format!(
            "{},arn:aws:iam::{ACCOUNT}:role/{role}=operator",
            roles()
        ))
        .expect("roles");
        let state = AppState {
            auth: Auth::Iam(Arc::new(roles)),
            ..fx.state.clone()
        };
        for (who, name) in [(operator_session(), "audited"), (arn.clone(), "audited-long")] {
            let request = lambda_request(
                &Method::POST,
                "/v1/environments",
                Some(&environment_body(name)),
                Authorizer::Iam(&who),
            );
            let reply = fx
                .send_to(state.clone(), format!("create {name} as {who}"), request)
                .await;
            reply.assert_status(202);
            let op = fx
                .store
                .get_operation(reply.i64_at("/operationId"))
                .await
                .expect("the operation");
            assert_eq!(op.principal, who, "[{b}] the operation's principal");
            let audit = fx
                .store
                .audit_of(&format!("environment/{}", reply.i64_at("/environment/id")))
                .await
                .expect("the audit log");
            let principals: Vec<&str> = audit.iter().map(|a| a.principal.as_str()).collect();
            assert_eq!(principals, [who.as_str()], "[{b}] the audit row's principal");
            let shown = fx
                .send_to(
                    state.clone(),
                    "the operation".into(),
                    lambda_request(
                        &Method::GET,
                        &format!("/v1/operations/{}", op.id),
                        None,
                        Authorizer::Iam(&who),
                    ),
                )
                .await;
            assert_eq!(
                shown.str_at("/principal"),
                who,
                "[{b}] GET /v1/operations/{}",
                op.id
            );
        }
    })
    .await;
}
