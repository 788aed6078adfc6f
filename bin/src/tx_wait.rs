//! Waiting for a submitted transaction: polling the node until it reports the status asked for
//! (committed, or certified: acknowledged), and printing what was reached.

use crate::duration::humane;
use anyhow::{bail, Result};
use lanes_api::{ApiError, Client, TxInfo, TxStatus};
use std::time::{Duration, Instant};

/// How often the wallet asks the node about a transaction it waits for.
const POLL: Duration = Duration::from_millis(50);

/// Waits up to `timeout` until the node reports `hash` at `target` or beyond. A 404 (the
/// transaction still propagating) and transient failures are retried; a 409 (the node's
/// receipts diverged from the certified ones) ends the wait. At the deadline the error says
/// what the node last said.
pub fn wait_for(node: &Client, hash: &str, target: TxStatus, timeout: Duration) -> Result<TxInfo> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match node.tx(hash) {
            Ok(tx) if tx.status >= target => return Ok(tx),
            Ok(tx) => seen(&tx),
            Err(e) if e.status() == Some(409) => bail!(
                "{hash} is in a block, but {} answers 409: {}",
                host(node),
                e.message().unwrap_or_default()
            ),
            Err(e @ ApiError::Decode { .. }) => return Err(e.into()),
            Err(e) if e.status() == Some(404) => "unknown to the node (404)".into(),
            Err(e) => format!("an error ({e})"),
        };
        if Instant::now() >= deadline {
            bail!(
                "not {target} within {}: last seen {last} on {}",
                humane(timeout),
                host(node)
            );
        }
        std::thread::sleep(POLL);
    }
}

/// A node's address without the scheme, for messages.
fn host(node: &Client) -> &str {
    let base = node.base();
    base.split_once("://").map_or(base, |(_, rest)| rest)
}

/// What a `/tx` answer says, for messages: `committed at height 12`.
fn seen(tx: &TxInfo) -> String {
    match tx.height {
        Some(h) => format!("{} at height {h}", tx.status),
        None => tx.status.to_string(),
    }
}

/// Prints the status a transaction reached and its receipt; an error if it did not succeed.
pub fn print_reached(tx: &TxInfo, name: &str, took: Duration, json: bool) -> Result<()> {
    let status = tx
        .receipt
        .as_ref()
        .map_or("no receipt", |r| r.status.as_str());
    if json {
        println!("{}", serde_json::to_string_pretty(tx)?);
    } else {
        let took = took.as_secs_f64();
        println!("{name} {}: {} after {took:.2}s", tx.hash, tx.status);
        println!(
            "  block {} (index {})",
            crate::explorer::or_dash(tx.height),
            crate::explorer::or_dash(tx.index),
        );
        if let Some(r) = &tx.receipt {
            let outputs = serde_json::to_string(&r.outputs)?;
            println!(
                "  receipt {status}, fee paid {}, outputs {outputs}",
                r.fee_paid
            );
        }
        if let Some(c) = &tx.certificate {
            println!(
                "  certified at height {} by validators {:?}",
                c.height, c.signers
            );
        }
    }
    if !tx.receipt.as_ref().is_some_and(|r| r.success) {
        bail!("{name} {} but did not succeed: {status}", tx.status);
    }
    Ok(())
}
