//! The API's protection: a rate per client IP (token buckets), a body size bound, a global
//! concurrency limit that sheds load (503) instead of queueing, a per-request timeout, a cap
//! on `/events` subscribers, and a counter per limit that bites (`lanes_api_rejected_total`).

use super::{HttpError, Shared};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The API's limits (`NodeParams::api_limits`). The defaults let the localnet, the bench and
/// the tests (all on loopback, thousands of requests a second) through untouched: loopback
/// clients are exempt from the rate limit unless `exempt_loopback` is false.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Requests in progress at once, over all clients (default 256); beyond, 503 at once.
    pub max_concurrent: usize,
    /// Longest a request may take to answer (default 10 s); beyond, 503.
    pub timeout: Duration,
    /// Largest request body (default 9 MiB: a full `POST /txs` batch of 4,096 transactions of
    /// 1 KiB in hex); beyond, 413.
    pub max_body_bytes: usize,
    /// Requests per second one client IP may sustain (default 100); beyond, 429.
    pub rate_per_sec: f64,
    /// Requests one client IP may send in a burst above its rate (default 200).
    pub burst: f64,
    /// Client IPs whose rate is tracked at once (default 10,000); the least useful entries
    /// are forgotten beyond it.
    pub max_clients: usize,
    /// Whether loopback clients (127.0.0.0/8, ::1) skip the rate limit (default true).
    pub exempt_loopback: bool,
    /// `GET /events` subscribers at once (default 64); beyond, 503.
    pub max_sse: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_concurrent: 256,
            timeout: Duration::from_secs(10),
            max_body_bytes: 9 << 20,
            rate_per_sec: 100.0,
            burst: 200.0,
            max_clients: 10_000,
            exempt_loopback: true,
            max_sse: 64,
        }
    }
}

/// Requests refused, by the limit that refused them.
#[derive(Default)]
pub struct Rejected {
    /// Over a client's rate (429).
    pub rate: AtomicU64,
    /// Too many requests in progress (503).
    pub concurrency: AtomicU64,
    /// Took longer than the timeout (503).
    pub timeout: AtomicU64,
    /// Body too large (413).
    pub body: AtomicU64,
    /// Too many `/events` subscribers (503).
    pub sse: AtomicU64,
    /// `/events` subscribers dropped because they fell behind.
    pub sse_lagged: AtomicU64,
}

/// One client's token bucket.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The limits' state, shared by every request of the API.
pub struct Guard {
    /// The configured limits.
    pub limits: ApiLimits,
    /// What they refused.
    pub rejected: Rejected,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    concurrency: Arc<Semaphore>,
    /// Permits for `/events` subscribers.
    pub sse: Arc<Semaphore>,
}

impl Guard {
    /// The state for `limits`.
    pub fn new(limits: ApiLimits) -> Guard {
        Guard {
            concurrency: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            sse: Arc::new(Semaphore::new(limits.max_sse)),
            limits,
            rejected: Rejected::default(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `/events` subscribers connected now.
    pub fn sse_subscribers(&self) -> usize {
        self.limits.max_sse - self.sse.available_permits()
    }

    /// Takes one token from `ip`'s bucket; false when it has none left.
    fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let l = &self.limits;
        if l.exempt_loopback && ip.is_loopback() {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&ip) && buckets.len() >= l.max_clients.max(1) {
            make_room(&mut buckets, l, now);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: l.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * l.rate_per_sec).min(l.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Forgets the clients whose bucket has refilled (they lose nothing); if none has, one
/// arbitrary client (the map stays bounded).
fn make_room(buckets: &mut HashMap<IpAddr, Bucket>, l: &ApiLimits, now: Instant) {
    let refill = Duration::from_secs_f64((l.burst / l.rate_per_sec.max(1e-9)).min(3600.0));
    buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
    if buckets.len() >= l.max_clients.max(1) {
        if let Some(ip) = buckets.keys().next().copied() {
            buckets.remove(&ip);
        }
    }
}

fn refuse(status: StatusCode, counter: &AtomicU64, msg: String) -> Response {
    crate::shared::Metrics::add(counter, 1);
    HttpError(status, msg).into_response()
}

/// The first middleware: the client's rate (keyed by its IP from `ConnectInfo`; a request
/// without one, as in router tests, is not rate limited) and the declared body size.
pub(super) async fn admit(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        if !g.allow(ip, Instant::now()) {
            let msg = format!(
                "rate limit: at most {} requests/s per client",
                g.limits.rate_per_sec
            );
            return refuse(StatusCode::TOO_MANY_REQUESTS, &g.rejected.rate, msg);
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > g.limits.max_body_bytes as u64) {
        let msg = format!("body larger than {} bytes", g.limits.max_body_bytes);
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, &g.rejected.body, msg);
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // A streamed (chunked) body that went over the bound while axum read it: its plain
        // text answer becomes our JSON one.
        let msg = format!("body larger than {} bytes", g.limits.max_body_bytes);
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, &g.rejected.body, msg);
    }
    res
}

/// The errors of the concurrency limit (shed) and the timeout, as JSON 503s.
fn overload_error(g: &Guard, e: tower::BoxError) -> Response {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    if e.is::<tower::load_shed::error::Overloaded>() {
        let msg = "too many requests in progress, retry".to_string();
        refuse(unavailable, &g.rejected.concurrency, msg)
    } else if e.is::<tower::timeout::error::Elapsed>() {
        let msg = format!("request took longer than {:?}", g.limits.timeout);
        refuse(unavailable, &g.rejected.timeout, msg)
    } else {
        HttpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    }
}

/// Wraps the routes in every limit, the outermost first: rate and declared size, load
/// shedding at the global concurrency limit, the timeout, the body bound while reading.
pub(super) fn protect(routes: axum::Router<()>, g: Arc<Guard>) -> axum::Router<()> {
    let shed_state = g.clone();
    let layers = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: tower::BoxError| {
            let g = shed_state.clone();
            async move { overload_error(&g, e) }
        }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
            g.concurrency.clone(),
        ))
        .timeout(g.limits.timeout);
    routes
        .layer(axum::extract::DefaultBodyLimit::max(
            g.limits.max_body_bytes,
        ))
        .layer(layers)
        .layer(axum::middleware::from_fn_with_state(g, admit))
}

/// Runs storage work on tokio's blocking pool, off the workers that drive QUIC. The pool is
/// bounded in effect by the concurrency limit (each request runs at most one such closure
/// at a time). A timed-out request stops waiting; its closure finishes in the background.
pub(super) async fn blocking<T, F>(s: &Arc<Shared>, f: F) -> Result<T, HttpError>
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> Result<T, HttpError> + Send + 'static,
{
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| super::internal(format!("storage work failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// A router whose one route takes 300 ms, behind `limits`.
    fn slow(limits: ApiLimits) -> (axum::Router, Arc<Guard>) {
        let g = Arc::new(Guard::new(limits));
        let routes = axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        );
        (protect(routes, g.clone()), g)
    }

    fn get(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_beyond_the_concurrency_limit_is_shed_and_a_slow_one_times_out() {
        let limits = ApiLimits {
            max_concurrent: 1,
            ..ApiLimits::default()
        };
        let (app, g) = slow(limits);
        let first = tokio::spawn(app.clone().oneshot(get("/slow")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = app.oneshot(get("/slow")).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(crate::shared::Metrics::get(&g.rejected.concurrency), 1);

        let limits = ApiLimits {
            timeout: Duration::from_millis(50),
            ..ApiLimits::default()
        };
        let (app, g) = slow(limits);
        let res = app.oneshot(get("/slow")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(crate::shared::Metrics::get(&g.rejected.timeout), 1);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_loopback_is_exempt() {
        let limits = ApiLimits {
            rate_per_sec: 2.0,
            burst: 3.0,
            max_clients: 2,
            ..ApiLimits::default()
        };
        let g = Guard::new(limits);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        assert!((0..3).all(|_| g.allow(ip, t)));
        assert!(!g.allow(ip, t));
        assert!(g.allow(ip, t + Duration::from_millis(500)));
        assert!((0..100).all(|_| g.allow("127.0.0.1".parse().unwrap(), t)));
        for i in 2..10 {
            assert!(g.allow(format!("10.0.0.{i}").parse().unwrap(), t));
        }
        assert!(
            g.buckets.lock().unwrap().len() <= 2,
            "the map stays bounded"
        );
    }
}
