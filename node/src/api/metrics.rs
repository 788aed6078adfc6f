//! `GET /metrics`: the Prometheus text format, from one table of series.

use super::AppState;
use crate::shared::{Metrics, StatusSnapshot};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::atomic::AtomicU64;

/// What the series are read from, taken once per scrape.
struct Scrape<'a> {
    status: &'a StatusSnapshot,
    m: &'a Metrics,
    /// Validators connected over QUIC.
    peers: usize,
    /// QUIC handshakes refused.
    rejected_handshakes: u64,
    /// The API's limits.
    api: &'a super::Guard,
}

/// One exported series: its name, Prometheus type, help text and value.
struct Series {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    read: fn(&Scrape<'_>) -> f64,
}

const fn gauge(name: &'static str, help: &'static str, read: fn(&Scrape<'_>) -> f64) -> Series {
    Series {
        name,
        kind: "gauge",
        help,
        read,
    }
}

const fn counter(name: &'static str, help: &'static str, read: fn(&Scrape<'_>) -> f64) -> Series {
    Series {
        name,
        kind: "counter",
        help,
        read,
    }
}

fn get(counter: &AtomicU64) -> f64 {
    Metrics::get(counter) as f64
}

/// Every series `/metrics` exposes, in order.
const SERIES: &[Series] = &[
    gauge("lanes_height", "Height of the last stored block.", |s| {
        s.status.height as f64
    }),
    gauge(
        "lanes_certified_height",
        "Highest height with an execution certificate.",
        |s| s.status.certified_height as f64,
    ),
    gauge("lanes_view", "Current PBFT view.", |s| s.status.view as f64),
    counter(
        "lanes_view_changes_total",
        "View changes started or joined.",
        |s| get(&s.m.view_changes),
    ),
    counter(
        "lanes_mempool_displaced_total",
        "Pending transactions evicted by better-paying ones or replaced by a higher fee.",
        |s| get(&s.m.displaced_txs),
    ),
    counter(
        "lanes_committed_blocks_total",
        "Blocks executed and stored.",
        |s| get(&s.m.committed_blocks),
    ),
    counter(
        "lanes_committed_txs_total",
        "Transactions in stored blocks.",
        |s| get(&s.m.committed_txs),
    ),
    gauge("lanes_mempool_txs", "Pending transactions.", |s| {
        s.status.mempool as f64
    }),
    gauge(
        "lanes_block_exec_seconds_last",
        "Execution time of the last block.",
        |s| get(&s.m.last_exec_us) / 1e6,
    ),
    counter(
        "lanes_block_exec_seconds_total",
        "Total block execution time.",
        |s| get(&s.m.exec_us_total) / 1e6,
    ),
    gauge("lanes_quic_peers", "Validators connected over QUIC.", |s| {
        s.peers as f64
    }),
    counter(
        "lanes_divergence_alarms_total",
        "Certified roots that differed from ours.",
        |s| get(&s.m.divergence_alarms),
    ),
    counter(
        "lanes_equivocation_alarms_total",
        "Validators seen signing two different blocks for one view and height.",
        |s| get(&s.m.equivocation_alarms),
    ),
    counter(
        "lanes_state_syncs_total",
        "Certified state snapshots installed from peers.",
        |s| get(&s.m.state_syncs),
    ),
    counter(
        "lanes_rejected_messages_total",
        "Invalid messages dropped (by consensus or by the node).",
        |s| get(&s.m.rejected_messages),
    ),
    counter(
        "lanes_unsendable_messages_total",
        "Messages this node could not send: larger than a network frame, or refused by the network.",
        |s| get(&s.m.unsendable_messages),
    ),
    counter(
        "lanes_rejected_txs_total",
        "Transactions refused by the API.",
        |s| get(&s.m.rejected_txs),
    ),
    counter(
        "lanes_api_refused_txs_total{reason=\"nonce_used\"}",
        "Transactions refused by the API against the sender's account (also in lanes_rejected_txs_total).",
        |s| get(&s.m.refused_nonce_used),
    ),
    counter("lanes_api_refused_txs_total{reason=\"nonce_ahead\"}", "", |s| {
        get(&s.m.refused_nonce_ahead)
    }),
    counter("lanes_api_refused_txs_total{reason=\"fee\"}", "", |s| {
        get(&s.m.refused_fee)
    }),
    counter(
        "lanes_dropped_inputs_total",
        "Messages dropped because consensus was busy.",
        |s| get(&s.m.dropped_inputs),
    ),
    counter(
        "lanes_rejected_handshakes_total",
        "QUIC handshakes refused.",
        |s| s.rejected_handshakes as f64,
    ),
    counter(
        "lanes_api_rejected_total{reason=\"rate\"}",
        "API requests refused by a limit: rate (429), concurrency (503), timeout (503), body (413), sse (503 at the subscriber cap).",
        |s| get(&s.api.rejected.rate),
    ),
    counter("lanes_api_rejected_total{reason=\"concurrency\"}", "", |s| {
        get(&s.api.rejected.concurrency)
    }),
    counter("lanes_api_rejected_total{reason=\"timeout\"}", "", |s| {
        get(&s.api.rejected.timeout)
    }),
    counter("lanes_api_rejected_total{reason=\"body\"}", "", |s| {
        get(&s.api.rejected.body)
    }),
    counter("lanes_api_rejected_total{reason=\"sse\"}", "", |s| {
        get(&s.api.rejected.sse)
    }),
    counter(
        "lanes_api_sse_dropped_total",
        "Event subscribers dropped because they fell behind.",
        |s| get(&s.api.rejected.sse_lagged),
    ),
    gauge(
        "lanes_api_sse_subscribers",
        "Event subscribers connected.",
        |s| s.api.sse_subscribers() as f64,
    ),
];

/// `GET /metrics`: every series of [`SERIES`], the help and type lines once per family (the
/// name before any `{labels}`; a labelled series after the first of its family has no help).
pub(super) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let status = s.status();
    let net = s.net.status();
    let scrape = Scrape {
        status: &status,
        m: &s.metrics,
        peers: net
            .peers
            .iter()
            .filter(|p| p.connected_out || p.connected_in)
            .count(),
        rejected_handshakes: net.rejected_handshakes,
        api: &s.guard,
    };
    let mut body = String::new();
    let mut family = "";
    for Series {
        name,
        kind,
        help,
        read,
    } in SERIES
    {
        let this = name.split('{').next().unwrap_or(name);
        if this != family {
            family = this;
            body += &format!("# HELP {this} {help}\n# TYPE {this} {kind}\n");
        }
        body += &format!("{name} {}\n", read(&scrape));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
