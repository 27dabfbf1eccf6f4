//! The API's errors: a status, a stable code, the field at fault, and a message
//! that says what to do. Internal causes go to the log, never to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use shared::domain::FieldError;
use shared::store::StoreError;
use shared::workflows::commands::CommandError;
use shared::workflows::diagnostics::RequestError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn field(
        status: StatusCode,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// This region stands by (or cannot prove it is active): writes go to the
    /// active region.
    pub fn standby(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "REGION_STANDBY", message)
    }

    /// The fence could not be read: this region cannot prove that it is
    /// active, so it takes no writes (docs/failover.md, "The gate").
    pub fn fence_unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "FENCE_UNAVAILABLE", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            message,
        )
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", message)
    }

    /// An opaque 500; the cause is logged here with its whole chain.
    pub fn internal(cause: impl std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; the DM's log has the cause",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(StatusCode::BAD_REQUEST, "INVALID_FIELD", e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ReadOnly { .. } => ApiError::standby(format!(
                "{e}: send writes to the active region's API (ocadm status shows which region is active)"
            )),
            other => CommandError::from(other).into(),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(f) => f.into(),
            CommandError::NotFound { kind, id } => ApiError::not_found(format!("{kind} {id} does not exist")),
            CommandError::Conflict(m) => ApiError::conflict(m),
            CommandError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<shared::workflows::failover::FailoverError> for ApiError {
    fn from(e: shared::workflows::failover::FailoverError) -> Self {
        use shared::workflows::failover::FailoverError as F;
        match e {
            F::Refused(m) => ApiError::new(StatusCode::CONFLICT, "FAILOVER_REFUSED", m),
            F::NotFound(m) => ApiError::not_found(m),
            F::KeyReused(m) => ApiError::conflict(m),
            F::Store(s) => s.into(),
            F::Fence(c) | F::Cloud(c) if c.is_retryable() => {
                tracing::warn!(error = %c, "fence or CloudWatch unavailable");
                ApiError::unavailable(format!("{c}; try again"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(f) => f.into(),
            RequestError::UnknownCluster(_) => {
                ApiError::field(StatusCode::NOT_FOUND, "NOT_FOUND", "id", e.to_string())
            }
            RequestError::Deleted { .. } => {
                ApiError::field(StatusCode::CONFLICT, "CONFLICT", "id", e.to_string())
            }
            RequestError::Command(c) => c.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(f) = self.field {
            error["field"] = json!(f);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
