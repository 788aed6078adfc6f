//! State transfer: how a replica whose missing blocks are pruned everywhere (or whose own state
//! diverged from the certified one) gets the certified state from a peer instead.
//!
//! The requester (consensus thread, [`StateSync`]) notices it is stuck: the network's height
//! (f+1 validators signed checkpoints above ours) is ahead and our executed height has not moved
//! for a while, or a quorum certified a root other than ours. It sends
//! [`NodeMessage::StateRequest`] to one peer whose claimed height is above ours, rotating over
//! those peers on every attempt. The peer
//! ([`serve`], its own thread) takes a RocksDB snapshot, streams its state as
//! [`StateChunk`]s of at most [`CHUNK_BYTES`], waiting for queue room rather than dropping, and
//! closes the stream with the execution certificate of the snapshot's height. The requester
//! accepts only a gap-free stream from that peer, bounded by [`MAX_STATE_BYTES`], of a height
//! above both its executed and its committed height (checked on the first chunk: an old
//! snapshot would roll the replica back below heights it voted on), whose certificate carries
//! a quorum of valid signatures; the apply thread ([`install`]) then
//! rebuilds the state tree from the entries and installs them only if the tree's root is the
//! certified root. Anything else aborts the attempt; the next one goes to another peer.

mod install;
mod request;
mod serve;
#[cfg(test)]
mod tests;

pub use install::install;
pub use request::{Need, Snapshot, StateSync};
pub use serve::serve;

use std::time::Duration;

/// Most bytes of entries in one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Most bytes of state a requester accepts in one transfer.
pub const MAX_STATE_BYTES: usize = 4 << 30;
/// How long a server waits for the execution certificate of its snapshot's height.
pub(crate) const CERT_WAIT: Duration = Duration::from_secs(10);
/// Transfers one node serves at once; further requests are ignored (the requester retries).
pub(crate) const MAX_SERVING: usize = 2;
/// A transfer with no chunk for this long is abandoned.
pub(crate) const CHUNK_TIMEOUT_MS: u64 = 10_000;
