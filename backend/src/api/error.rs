//! The one error type of the API and how each case maps to a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use balancelab_shared::{ErrorBody, FieldError};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    /// The body is not JSON at all.
    #[error("{0}")]
    BadRequest(String),
    /// The request is valid but the resource's state forbids it (cancelling a finished run).
    #[error("{0}")]
    Conflict(String),
    /// No valid token (or share link) was presented.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but without the role this needs.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// Well-formed input that does not describe a valid value; each field says why.
    #[error("{} invalid: {}", if .0.len() == 1 { "a field is" } else { "fields are" }, .0.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, fields) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, Vec::new()),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, Vec::new()),
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
