//! `GET /events`: server-sent events, one `block` event ([`lanes_api::BlockEvent`]) per
//! committed block. At most `ApiLimits::max_sse` subscribers at once (beyond, 503); one that
//! falls behind is dropped, not buffered for.

use super::{AppState, HttpError};
use crate::shared::Metrics;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;

/// Events buffered for one subscriber before it counts as lagging and is dropped.
const SUBSCRIBER_BUFFER: usize = 64;

/// The stream of `block` events, kept alive every 10 s, or 503 when the subscribers are at
/// their cap.
pub(super) async fn events(State(s): State<AppState>) -> Response {
    let g = s.guard.clone();
    let Ok(permit) = g.sse.clone().try_acquire_owned() else {
        Metrics::add(&g.rejected.sse, 1);
        let msg = format!(
            "at most {} event subscribers, retry later",
            g.limits.max_sse
        );
        return HttpError(StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    };
    let mut rx = s.blocks.subscribe();
    let stream = async_stream(move |tx| async move {
        let _permit = permit;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => return,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => return Metrics::add(&g.rejected.sse_lagged, 1),
                Err(RecvError::Closed) => return,
            };
            let data = serde_json::to_string(&ev).unwrap_or_default();
            match tx.try_send(Ok(SseEvent::default().event("block").data(data))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Metrics::add(&g.rejected.sse_lagged, 1),
                Err(TrySendError::Closed(_)) => return,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

/// A stream fed by a task through a bounded channel.
fn async_stream<F, Fut>(f: F) -> tokio_stream_shim::ReceiverStream<Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIBER_BUFFER);
    tokio::spawn(f(tx));
    tokio_stream_shim::ReceiverStream(rx)
}

mod tokio_stream_shim {
    //! A minimal `Stream` over a tokio mpsc receiver (saves a dependency).
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Wraps a receiver as a stream.
    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_core::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
