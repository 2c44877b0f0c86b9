//! The request-body deadline: a client has `HAM_BODY_TIMEOUT` (60 s by default)
//! after its headers to send the whole body. A client that trickles a byte every
//! few seconds would otherwise hold its handler (and whatever it reserved) for as
//! long as it likes; past the deadline the body fails with [`BodyTimeout`], the
//! handler answers 408 `body_timeout`, and the connection closes.
//!
//! A request answered before its body was read to the end (refused early: 401,
//! 403, 413, ...) is answered with `Connection: close`. The unread rest of the
//! body would otherwise be taken for the next request on the connection; hyper
//! closes such a connection anyway, and the header tells the client so before it
//! sends another request on it (hyperium/hyper#2384).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::AppState;

/// The body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

/// Whether an error (a body or extractor failure) comes from [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Gives a request's body the configured deadline. The flag it returns (none
/// for a request without a body) goes to [`close_unless_read`] with the answer.
pub fn arm(state: &AppState, request: Request) -> (Request, Option<Arc<AtomicBool>>) {
    // Requests without a body (most GETs) cost nothing here.
    if http_body::Body::is_end_stream(request.body()) {
        return (request, None);
    }
    let timeout = state.settings.body_timeout;
    let read_to_end = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Deadline {
            body,
            timer: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            read_to_end: read_to_end.clone(),
        })
    });
    (request, Some(read_to_end))
}

/// Closes the connection after an answer given before the body was read to
/// its end.
pub fn close_unless_read(mut response: Response, read_to_end: Option<Arc<AtomicBool>>) -> Response {
    if read_to_end.is_some_and(|read| !read.load(Ordering::Acquire)) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

struct Deadline {
    body: Body,
    timer: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    /// Set once the body has been read to its end.
    read_to_end: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // What has arrived is taken first: a body complete at the deadline passes.
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            if frame.is_none() || this.body.is_end_stream() {
                this.read_to_end.store(true, Ordering::Release);
            }
            return Poll::Ready(frame);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
