//! Request parsing at the edge: the caller, JSON bodies (content type, size, shape)
//! and ids. Every failure names what is wrong; nothing is written on any of them.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;
use shared::store::{Role, WriteCtx};
use shared::workflows::commands::request_fingerprint;

use crate::ApiError;

/// The largest body the API reads.
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_KEY: usize = 255;

/// Who is calling: a token's name, or an IAM caller's ARN (`crate::auth`).
/// The name is the `principal` of the operations and audit rows it writes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Where the role comes from, for messages: "its token", or the
    /// `OKERA_IAM_ROLES` entry.
    pub granted_by: String,
}

/// A JSON body parsed into `T`, with what the write needs to be idempotent.
pub struct JsonBody<T> {
    pub value: T,
    idempotency: Option<(String, String)>,
}

impl<T> JsonBody<T> {
    pub fn write_ctx(&self, caller: &Caller) -> WriteCtx {
        WriteCtx {
            principal: caller.name.clone(),
            idempotency: self.idempotency.clone(),
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(k) => Ok(Some(k.to_owned())),
        None => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "Idempotency-Key",
            format!("the Idempotency-Key header must be 1 to {MAX_KEY} visible ASCII characters"),
        )),
    }
}

/// The write context of a request that has no body (DELETE).
pub fn write_ctx_without_body(
    caller: &Caller,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<WriteCtx, ApiError> {
    let fingerprint = |k| {
        (
            k,
            request_fingerprint(method.as_str(), uri.path(), &serde_json::Value::Null),
        )
    };
    Ok(WriteCtx {
        principal: caller.name.clone(),
        idempotency: idempotency_key(headers)?.map(fingerprint),
    })
}

/// Turns serde's message into the field at fault and our error code. For a
/// missing field the path is the object that lacks it.
fn shape_error(path: &str, message: &str) -> ApiError {
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let root = path == "." || path.is_empty();
    let prefix = if root { String::new() } else { format!("{path}.") };
    if message.starts_with("unknown field") {
        // The path already ends with the unknown field's name.
        let field = if root {
            quoted.unwrap_or_default()
        } else {
            path.to_owned()
        };
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_FIELD",
            field.clone(),
            format!("{field} is not a field of this request; {message}"),
        )
    } else if message.starts_with("missing field") {
        let field = format!("{prefix}{}", quoted.unwrap_or_default());
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "MISSING_FIELD",
            field.clone(),
            format!("{field} is required"),
        )
    } else {
        let field = if path == "." {
            String::new()
        } else {
            path.to_owned()
        };
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            field.clone(),
            format!("{field}: {message}"),
        )
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, false).await
    }
}

/// A JSON body that may also be left out (no body at all), which reads as `{}`.
/// A body that is there is held to the same rules as a [`JsonBody`].
pub struct OptionalJsonBody<T>(pub JsonBody<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, true).await.map(OptionalJsonBody)
    }
}

async fn read_json<T: DeserializeOwned>(req: Request, may_be_empty: bool) -> Result<JsonBody<T>, ApiError> {
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !may_be_empty {
        return Err(unsupported(content_type));
    }
    let key = idempotency_key(&parts.headers)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(format!("the body is larger than {MAX_BODY} bytes")))?;
    let value: serde_json::Value = if may_be_empty && bytes.is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        if mime != "application/json" {
            return Err(unsupported(content_type));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?
    };
    // serde would fill a struct from an array by position; only objects name
    // their fields.
    if !value.is_object() {
        return Err(ApiError::malformed(
            "the body must be a JSON object with named fields",
        ));
    }
    let parsed: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        shape_error(&path, &e.inner().to_string())
    })?;
    let idempotency = key.map(|k| {
        (
            k,
            request_fingerprint(parts.method.as_str(), parts.uri.path(), &value),
        )
    });
    Ok(JsonBody {
        value: parsed,
        idempotency,
    })
}

fn unsupported(content_type: &str) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "the body must be JSON with Content-Type: application/json, got {:?}",
        content_type
    ))
}

/// The numeric `{id}` of a route. Anything else, even bytes that are not UTF-8,
/// is a 400 that names `id`.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(raw)) => parse_id_field("id", &raw).map(Id),
            Err(_) => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "id",
                "id must be a positive whole number",
            )),
        }
    }
}

pub fn parse_id_field(field: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            field,
            format!("{field} must be a positive whole number, got {raw:?}"),
        )
    })
}
