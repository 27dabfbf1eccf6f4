//! Request parsing at the edge: the caller, JSON bodies (content type, size, shape)
//! and ids. Every failure names what is wrong; nothing is written on any of them.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use shared::store::{Role, WriteCtx};
use shared::workflows::commands::request_fingerprint;

use crate::ApiError;

/// The largest body the API reads.
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_KEY: usize = 255;

/// Who is calling, from their token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
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
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<WriteCtx, ApiError> {
    let idempotency =
        idempotency_key(headers)?.map(|k| (k, request_fingerprint(method, path, &serde_json::Value::Null)));
    Ok(WriteCtx {
        principal: caller.name.clone(),
        idempotency,
    })
}

/// Turns serde's message into the field at fault and our error code.
fn shape_error(path: &str, message: &str) -> ApiError {
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let prefix = if path == "." || path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    if message.starts_with("unknown field") {
        let field = format!("{prefix}{}", quoted.unwrap_or_default());
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
        if mime != "application/json" {
            return Err(ApiError::unsupported_media_type(format!(
                "the body must be JSON with Content-Type: application/json, got {:?}",
                content_type
            )));
        }
        let key = idempotency_key(&parts.headers)?;
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::too_large(format!("the body is larger than {MAX_BODY} bytes")))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
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
}

/// A numeric id from a path segment.
pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    parse_id_field("id", raw)
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
