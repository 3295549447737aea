//! How a handler answers: now, or later. A request whose answer waits (for a tool, a worker, a
//! durable write, a file read) is answered by the part that owns the work when it is done.

use clawgate_proto::frame::{to_raw, ErrorShape};
use clawgate_proto::http::Response;
use serde_json::value::RawValue;
use serde_json::Value;

/// What a method handler answers: now, or later (the answer comes when a tool has run, a worker
/// has finished, a persist is durable; the part that owns the request sends it then).
pub(crate) enum Reply {
    /// The answer, to send at once.
    Now(Result<Box<RawValue>, ErrorShape>),
    /// No answer yet.
    Later,
}

impl Reply {
    /// An answer given now as a JSON value.
    pub(crate) fn value(result: Result<Value, ErrorShape>) -> Reply {
        Reply::Now(result.map(|v| to_raw(&v)))
    }

    /// A handler's result where `Ok(None)` means the answer comes later.
    pub(crate) fn deferred<T: serde::Serialize>(result: Result<Option<T>, ErrorShape>) -> Reply {
        match result {
            Ok(None) => Reply::Later,
            Ok(Some(v)) => Reply::Now(Ok(to_raw(&v))),
            Err(e) => Reply::Now(Err(e)),
        }
    }
}

/// What an HTTP route answers: now, or later (a tool, an agent or a file read answers on the
/// connection when it is done; later pipelined requests wait until then).
pub(crate) enum HttpReply {
    /// The response, to send at once.
    Now(Response),
    /// No response yet.
    Later,
}

impl From<Result<(), Response>> for HttpReply {
    /// `Ok` is work that answers later; `Err` a refusal to send now.
    fn from(result: Result<(), Response>) -> Self {
        match result {
            Ok(()) => HttpReply::Later,
            Err(response) => HttpReply::Now(response),
        }
    }
}

/// A JSON answer that no cache keeps.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Response {
    Response::json(status, body).header("Cache-Control", "no-store")
}
