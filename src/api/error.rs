//! Engine errors → HTTP: the one place status codes are chosen.

use hyper::StatusCode;

use super::{Response, response};
use crate::engine::Error;

/// The status code for an engine error.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::InvalidParameter(_) => StatusCode::BAD_REQUEST,
        Error::NotModified(_) => StatusCode::NOT_MODIFIED,
        Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"message": "..."}` with the error's status (304 has no body, by HTTP's rules).
pub fn to_response(e: &Error) -> Response {
    let status = status_of(e);
    if status == StatusCode::NOT_MODIFIED {
        return response::empty(status);
    }
    if status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::SERVICE_UNAVAILABLE
    {
        tracing::error!("Handler for request failed: {e}");
    }
    response::json(status, &serde_json::json!({ "message": e.to_string() }))
}
