//! Building responses: JSON with Docker's trailing newline, empty, plain text.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use super::Response;
use super::body;

/// A JSON response; like Go's `json.Encoder`, the document ends with a newline.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let mut data = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    data.push(b'\n');
    with_type(status, "application/json", Bytes::from(data))
}

/// 200 with JSON.
pub fn ok_json<T: Serialize + ?Sized>(value: &T) -> Response {
    json(StatusCode::OK, value)
}

/// A response with no body (204, 304, …).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(body::empty());
    *r.status_mut() = status;
    r
}

/// A body with a content type.
pub fn with_type(status: StatusCode, content_type: &'static str, data: Bytes) -> Response {
    let mut r = Response::new(body::full(data));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A streaming response of the given content type.
pub fn stream(content_type: &'static str, body: body::Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
