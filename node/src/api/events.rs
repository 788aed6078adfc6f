//! `GET /events`: server-sent events, one `block` event ([`lanes_api::BlockEvent`]) per
//! committed block.

use super::AppState;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use std::convert::Infallible;
use std::time::Duration;

/// The stream of `block` events, kept alive every 10 s; a follower that lags skips blocks.
pub(super) async fn events(
    State(s): State<AppState>,
) -> Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut rx = s.blocks.subscribe();
    let stream = async_stream(move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    if tx
                        .send(Ok(SseEvent::default().event("block").data(data)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

/// A stream fed by a task through a bounded channel.
fn async_stream<F, Fut>(f: F) -> tokio_stream_shim::ReceiverStream<Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
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
