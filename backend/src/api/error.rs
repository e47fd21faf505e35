//! The one error type of the API and how each case maps to a status code. Every error
//! answers with an [`ErrorBody`]: a message, and for invalid input the fields at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use balancelab_shared::{ErrorBody, FieldError};

use crate::auth::AccessError;
use crate::store::StoreError;

/// Why a request failed; each variant is one status code.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    /// 404: no such resource, or one the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request cannot be read at all (the body is not JSON).
    #[error("{0}")]
    BadRequest(String),
    /// 400: a path or query parameter that does not parse, named.
    #[error("{}: {}", .0.field, .0.message)]
    BadParameter(FieldError),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 415: a body sent as something other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: the body is over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 409: the request is valid but the resource's state forbids it (cancelling a finished
    /// run).
    #[error("{0}")]
    Conflict(String),
    /// 401: no valid token (or share link) was presented.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: signed in, but without the role this needs.
    #[error("{0}")]
    Forbidden(String),
    /// 429: too many attempts (sign-ins).
    #[error("{0}")]
    TooManyRequests(String),
    /// 422: well-formed input that does not describe a valid value; each field says why.
    #[error("{} invalid: {}", if .0.len() == 1 { "a field is" } else { "fields are" }, .0.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
    /// 500: the store failed; the caller learns nothing more, the log has the cause.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        let message = error.to_string();
        match error {
            AccessError::SignedOut | AccessError::UnknownToken | AccessError::UnknownShareLink => {
                Self::Unauthorized(message)
            }
            AccessError::NoSuchProject(_) | AccessError::NoSuchRun(_) => Self::NotFound(message),
            AccessError::ProjectRole { .. } | AccessError::RunRole { .. } => {
                Self::Forbidden(message)
            }
            AccessError::Store(e) => Self::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, fields) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, Vec::new()),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, Vec::new()),
            Self::BadParameter(field) => (StatusCode::BAD_REQUEST, vec![field.clone()]),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, Vec::new()),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new()),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, Vec::new()),
            Self::Conflict(_) => (StatusCode::CONFLICT, Vec::new()),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, Vec::new()),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, Vec::new()),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, Vec::new()),
            Self::Invalid(fields) => (StatusCode::UNPROCESSABLE_ENTITY, fields.clone()),
            Self::Store(e) => {
                tracing::error!(error = %e, "store error");
                (StatusCode::INTERNAL_SERVER_ERROR, Vec::new())
            }
        };
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error; see the server log".to_owned(),
            _ => self.to_string(),
        };
        (status, Json(ErrorBody { message, fields })).into_response()
    }
}
