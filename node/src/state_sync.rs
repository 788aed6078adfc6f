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

use super::shared::{Metrics, Shared};
use super::wire::{self, NodeMessage, StateChunk};
use lanes_executor::smt;
use lanes_executor::state::{Key, Value};
use lanes_storage::{Head, Record, StateInstall, Store};
use lanes_types::codec::Decode;
use lanes_types::{Bytes, CheckpointCertificate, Genesis};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes of entries in one chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Most bytes of state a requester accepts in one transfer.
pub const MAX_STATE_BYTES: usize = 4 << 30;
/// How long a server waits for the execution certificate of its snapshot's height.
const CERT_WAIT: Duration = Duration::from_secs(10);
/// Transfers one node serves at once; further requests are ignored (the requester retries).
const MAX_SERVING: usize = 2;
/// A transfer with no chunk for this long is abandoned.
const CHUNK_TIMEOUT_MS: u64 = 10_000;

static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Serves a snapshot of this node's state to validator `to` on a thread of its own.
pub fn serve(shared: &Arc<Shared>, runtime: &tokio::runtime::Handle, to: u32, session: u64) {
    if SERVING.fetch_add(1, Ordering::SeqCst) >= MAX_SERVING {
        SERVING.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!(to, "state request ignored: already serving {MAX_SERVING}");
        return;
    }
    let (shared, runtime) = (shared.clone(), runtime.clone());
    let spawned = std::thread::Builder::new()
        .name("state-serve".into())
        .spawn(move || {
            if let Err(e) = stream_state(&shared, &runtime, to, session) {
                tracing::warn!(to, error = %e, "state transfer to a peer failed");
            }
            SERVING.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        SERVING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn stream_state(
    shared: &Shared,
    runtime: &tokio::runtime::Handle,
    to: u32,
    session: u64,
) -> anyhow::Result<()> {
    let send = |chunk: StateChunk| -> anyhow::Result<()> {
        let bytes = wire::node_bytes(&NodeMessage::StateChunk(chunk));
        runtime
            .block_on(shared.net.send_wait(to, bytes.into()))
            .map_err(|e| anyhow::anyhow!("sending a state chunk: {e}"))
    };
    let (head, sent) = shared.store.with_state_snapshot(|head, entries| {
        let mut seq = 0u32;
        let mut chunk = Vec::new();
        let mut bytes = 0usize;
        for entry in entries {
            let (k, v) = entry?;
            bytes += k.len() + v.len() + 8;
            chunk.push((Bytes(k), Bytes(v)));
            if bytes >= CHUNK_BYTES {
                send(chunk_of(session, &head, seq, std::mem::take(&mut chunk)))?;
                seq += 1;
                bytes = 0;
            }
        }
        anyhow::Ok((head, (seq, chunk)))
    })??;
    let (seq, rest) = sent;
    // The certificate of the snapshot's height arrives shortly after its block executed.
    let deadline = Instant::now() + CERT_WAIT;
    let certificate = loop {
        if let Some(c) = shared.store.checkpoint_certificate(head.height)? {
            break Some(c);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut last = chunk_of(session, &head, seq, rest);
    last.last = true;
    last.certificate = certificate;
    let certified = last.certificate.is_some();
    send(last)?;
    tracing::info!(
        to,
        height = head.height,
        chunks = seq + 1,
        certified,
        "served a state snapshot"
    );
    Ok(())
}

fn chunk_of(session: u64, head: &Head, seq: u32, entries: Vec<(Bytes, Bytes)>) -> StateChunk {
    StateChunk {
        session,
        height: head.height,
        block_hash: head.block_hash,
        state_root: head.state_root,
        seq,
        entries,
        last: false,
        certificate: None,
    }
}

/// A certified snapshot, received whole and ready for [`install`].
#[derive(Debug)]
pub struct Snapshot {
    /// The execution certificate of the snapshot's height (quorum checked).
    pub certificate: CheckpointCertificate,
    /// Every state entry.
    pub entries: Vec<Record>,
}

struct Session {
    id: u64,
    peer: u32,
    /// Fetched to repair a diverged state: a snapshot at our own height is then wanted too.
    repair: bool,
    last_chunk_at: u64,
    next_seq: u32,
    first: Option<(u64, lanes_types::Hash, lanes_types::Hash)>,
    entries: Vec<Record>,
    bytes: usize,
}

/// The requesting side, driven by the consensus thread.
pub struct StateSync {
    me: u32,
    validators: u32,
    stuck_ms: u64,
    session: Option<Session>,
    installing: bool,
    executed: (u64, u64),
    pruned_hint: Option<u64>,
    next_try: u64,
    attempts: u64,
    next_id: u64,
}

/// Why a state transfer is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing.
    None,
    /// Behind the network with no block progress.
    Behind,
    /// Our root differs from a certified one.
    Diverged,
}

impl StateSync {
    /// Requester state for validator `me` of `validators`; a transfer starts after `stuck_ms`
    /// without execution progress while the network is ahead.
    pub fn new(me: u32, validators: u32, stuck_ms: u64, now: u64) -> StateSync {
        StateSync {
            me,
            validators,
            stuck_ms,
            session: None,
            installing: false,
            executed: (0, now),
            pruned_hint: None,
            next_try: 0,
            attempts: 0,
            next_id: now,
        }
    }

    /// Records our executed height (progress resets the stuck clock).
    pub fn executed(&mut self, height: u64, now: u64) {
        if height != self.executed.0 {
            self.executed = (height, now);
        }
    }

    /// A peer answered a catch-up request without blocks: it pruned them.
    pub fn blocks_unavailable(&mut self, now: u64) {
        self.pruned_hint = Some(now);
    }

    /// What the node needs, from its executed height, the network's and divergence. Behind
    /// means the network is ahead and either a peer said the blocks we need are pruned since we
    /// last made progress, or we made none for `stuck_ms`.
    pub fn need(&self, network_height: u64, diverged: bool, now: u64) -> Need {
        let (height, since) = self.executed;
        let pruned = self.pruned_hint.is_some_and(|at| at >= since);
        if diverged {
            Need::Diverged
        } else if network_height > height && (pruned || now >= since + self.stuck_ms) {
            Need::Behind
        } else {
            Need::None
        }
    }

    /// A one-line description for `/status`.
    pub fn describe(&self) -> Option<String> {
        if self.installing {
            return Some("installing a snapshot".into());
        }
        self.session.as_ref().map(|s| {
            format!(
                "fetching state from validator {} ({} chunks, {} bytes)",
                s.peer, s.next_seq, s.bytes
            )
        })
    }

    /// The height a snapshot must exceed: our executed height or the replica's `committed`
    /// height, whichever is higher.
    fn floor(&self, committed: u64) -> u64 {
        self.executed.0.max(committed)
    }

    /// The lowest snapshot height acceptable: above [`Self::floor`], or at it when repairing a
    /// diverged state (the certified root at our own height replaces ours; nothing is rolled
    /// back: the replica restarts from the same height with the same safety records).
    fn lowest(&self, committed: u64, repair: bool) -> u64 {
        self.floor(committed) + u64::from(!repair)
    }

    /// Starts, times out or keeps the transfer; returns a request to send when one starts.
    /// `claims[v]` is the height validator `v` claims to have executed (its latest CHECKPOINT);
    /// only peers claiming a height we would accept ([`Self::lowest`]) are asked, in turn.
    pub fn tick(
        &mut self,
        need: Need,
        claims: &[u64],
        committed: u64,
        now: u64,
    ) -> Option<(u32, NodeMessage)> {
        if let Some(s) = &self.session {
            if now > s.last_chunk_at + CHUNK_TIMEOUT_MS {
                tracing::warn!(peer = s.peer, "state transfer timed out");
                self.abort(now);
            }
            return None;
        }
        if need == Need::None || self.installing || now < self.next_try {
            return None;
        }
        let repair = need == Need::Diverged;
        let peer = self.next_peer(claims, self.lowest(committed, repair))?;
        self.attempts += 1;
        self.next_id += 1;
        let id = self.next_id;
        tracing::info!(
            peer,
            ?need,
            attempt = self.attempts,
            "fetching the certified state"
        );
        self.session = Some(Session {
            id,
            peer,
            repair,
            last_chunk_at: now,
            next_seq: 0,
            first: None,
            entries: Vec::new(),
            bytes: 0,
        });
        Some((peer, NodeMessage::StateRequest { session: id }))
    }

    /// The peer of this attempt among the others whose claim reaches `target`, if any.
    fn next_peer(&self, claims: &[u64], target: u64) -> Option<u32> {
        let able: Vec<u32> = (1..self.validators)
            .map(|i| (self.me + i) % self.validators)
            .filter(|&v| claims.get(v as usize).is_some_and(|&c| c >= target))
            .collect();
        if able.is_empty() {
            return None;
        }
        Some(able[(self.attempts % able.len() as u64) as usize])
    }

    fn abort(&mut self, now: u64) {
        self.session = None;
        self.next_try = now + 1_000;
    }

    /// Takes a chunk; returns the snapshot when a verified stream is complete. A chunk of a
    /// stream we did not ask for (another session or peer) is ignored. An error aborts the
    /// transfer (the next attempt asks another peer). A stream whose height is not (or no
    /// longer) above our executed height and the replica's `committed` height (or, repairing
    /// a divergence, at least at it) is refused before its entries are taken: on its first
    /// chunk, or the first after we caught up.
    pub fn on_chunk(
        &mut self,
        from: u32,
        chunk: StateChunk,
        genesis: &Genesis,
        committed: u64,
        now: u64,
    ) -> Result<Option<Snapshot>, String> {
        let floor = self.floor(committed);
        let Some(s) = self.session.as_mut() else {
            return Ok(None); // a stale stream: ignored
        };
        if s.id != chunk.session || s.peer != from {
            return Ok(None);
        }
        let lowest = floor + u64::from(!s.repair);
        let result = Self::take(s, chunk, genesis, lowest, now);
        match result {
            Ok(Some(_)) => {
                self.session = None;
                self.installing = true;
            }
            Ok(None) => {}
            Err(_) => self.abort(now),
        }
        result
    }

    fn take(
        s: &mut Session,
        chunk: StateChunk,
        genesis: &Genesis,
        lowest: u64,
        now: u64,
    ) -> Result<Option<Snapshot>, String> {
        if chunk.height < lowest {
            return Err(format!(
                "the peer's snapshot is of height {}, below the {lowest} we need: installing \
                 it would roll this node back",
                chunk.height
            ));
        }
        if chunk.seq != s.next_seq {
            return Err(format!(
                "chunk {} arrived, {} expected",
                chunk.seq, s.next_seq
            ));
        }
        let id = (chunk.height, chunk.block_hash, chunk.state_root);
        if *s.first.get_or_insert(id) != id {
            return Err("chunks of different snapshots".into());
        }
        for (k, v) in chunk.entries {
            s.bytes += k.0.len() + v.0.len();
            if s.bytes > MAX_STATE_BYTES {
                return Err(format!("state larger than {MAX_STATE_BYTES} bytes"));
            }
            if s.entries.last().is_some_and(|(last, _)| *last >= k.0) {
                return Err("state entries out of order".into());
            }
            s.entries.push((k.0, v.0));
        }
        s.next_seq += 1;
        s.last_chunk_at = now;
        if !chunk.last {
            return Ok(None);
        }
        let cert = chunk
            .certificate
            .ok_or("the peer has no execution certificate for its snapshot")?;
        if (cert.height, cert.block_hash, cert.state_root) != id {
            return Err("the certificate is for another block or root".into());
        }
        cert.verify(&genesis.chain_id, &genesis.validator_set())
            .map_err(|e| format!("bad execution certificate: {e}"))?;
        Ok(Some(Snapshot {
            certificate: cert,
            entries: std::mem::take(&mut s.entries),
        }))
    }

    /// The executor finished (or refused) the install.
    pub fn installed(&mut self, ok: bool, now: u64) {
        self.installing = false;
        if ok {
            self.attempts = 0;
            self.executed = (self.executed.0, now);
        } else {
            self.next_try = now + 1_000;
        }
    }
}

/// Rebuilds the state tree from a snapshot's entries and, if its root is the certified one,
/// installs the snapshot in place of the stored state (apply thread).
pub fn install(store: &Store, snapshot: &Snapshot, metrics: &Metrics) -> Result<Head, String> {
    let started = Instant::now();
    let mut updates = Vec::with_capacity(snapshot.entries.len());
    for (k, v) in &snapshot.entries {
        let key = Key::from_bytes(k).map_err(|e| format!("undecodable state key: {e}"))?;
        let value = Value::from_bytes(v).map_err(|e| format!("undecodable state value: {e}"))?;
        updates.push((smt::key_hash(&key), Some(smt::value_hash(&value))));
    }
    updates.sort_unstable_by_key(|u| u.0);
    if updates.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("two state entries share a tree path".into());
    }
    let tree = smt::update(&smt::MemNodeStore::default(), smt::EMPTY, &updates)
        .map_err(|e| format!("building the state tree: {e}"))?;
    let cert = &snapshot.certificate;
    if tree.root != cert.state_root {
        return Err(format!(
            "the snapshot's root {} is not the certified {}",
            tree.root, cert.state_root
        ));
    }
    let nodes = super::execute::tree_writes(&tree.new_nodes);
    store
        .install_state(&StateInstall {
            certificate: cert,
            state: &snapshot.entries,
            tree: &nodes,
        })
        .map_err(|e| format!("storing the snapshot: {e}"))?;
    Metrics::add(&metrics.state_syncs, 1);
    tracing::info!(
        height = cert.height,
        root = %cert.state_root.short(),
        entries = snapshot.entries.len(),
        ms = started.elapsed().as_millis() as u64,
        "installed the certified state"
    );
    Ok(Head {
        height: cert.height,
        block_hash: cert.block_hash,
        state_root: cert.state_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::cert::checkpoint_message;
    use lanes_types::{Hash, SecretKey, ValidatorSignature};

    fn keys() -> Vec<SecretKey> {
        crate::fixtures::keys("state-sync")
    }

    fn genesis(keys: &[SecretKey]) -> Genesis {
        crate::fixtures::genesis("state-sync-test", keys)
    }

    /// An execution certificate of (9, block, root) signed by `signers`.
    fn cert(keys: &[SecretKey], g: &Genesis, signers: &[u32]) -> CheckpointCertificate {
        let (block, root) = (Hash::tagged("t", b"block"), Hash::tagged("t", b"root"));
        let msg = checkpoint_message(&g.chain_id, 9, &block, &root);
        CheckpointCertificate {
            height: 9,
            block_hash: block,
            state_root: root,
            signatures: signers
                .iter()
                .map(|&v| ValidatorSignature {
                    validator: v,
                    signature: keys[v as usize].sign(&msg),
                })
                .collect(),
        }
    }

    fn chunk(
        session: u64,
        seq: u32,
        keys: &[u8],
        last: Option<CheckpointCertificate>,
    ) -> StateChunk {
        StateChunk {
            session,
            height: 9,
            block_hash: Hash::tagged("t", b"block"),
            state_root: Hash::tagged("t", b"root"),
            seq,
            entries: keys
                .iter()
                .map(|k| (Bytes(vec![*k]), Bytes(vec![1])))
                .collect(),
            last: last.is_some(),
            certificate: last,
        }
    }

    /// Claims under which every peer is far ahead.
    const ALL: [u64; 4] = [100; 4];

    /// A requester (validator 0 of 4) that has just asked a peer; returns it and (peer, session).
    fn asking() -> (StateSync, u32, u64) {
        let mut s = StateSync::new(0, 4, 30_000, 0);
        s.blocks_unavailable(10);
        assert_eq!(s.need(5, false, 10), Need::Behind);
        let (peer, msg) = s.tick(Need::Behind, &ALL, 0, 10).expect("a request");
        let NodeMessage::StateRequest { session } = msg else {
            panic!("not a state request")
        };
        (s, peer, session)
    }

    #[test]
    fn it_waits_for_a_pruned_answer_or_a_long_stall_before_fetching_state() {
        let mut s = StateSync::new(0, 4, 30_000, 0);
        assert_eq!(s.need(0, false, 1_000), Need::None, "not behind");
        assert_eq!(
            s.need(5, false, 1_000),
            Need::None,
            "behind, but blocks may come"
        );
        assert_eq!(
            s.need(5, false, 30_000),
            Need::Behind,
            "no progress for long"
        );
        s.executed(3, 30_000);
        assert_eq!(
            s.need(5, false, 31_000),
            Need::None,
            "progress resets the clock"
        );
        s.blocks_unavailable(31_000);
        assert_eq!(s.need(5, false, 31_000), Need::Behind, "a peer pruned them");
        assert_eq!(s.need(5, true, 31_000), Need::Diverged);
        assert!(s.tick(Need::None, &ALL, 0, 31_000).is_none());
    }

    #[test]
    fn a_complete_certified_stream_yields_the_snapshot_and_attempts_rotate_peers() {
        let k = keys();
        let g = genesis(&k);
        let (mut s, peer, session) = asking();
        assert_ne!(peer, 0, "never itself");
        assert!(s.describe().is_some());
        assert!(s
            .on_chunk(peer, chunk(session, 0, &[1, 2], None), &g, 0, 20)
            .unwrap()
            .is_none());
        // Another peer's or another session's chunk is ignored, not an error.
        let other = (peer + 1) % 4;
        assert!(s
            .on_chunk(other, chunk(session, 1, &[3], None), &g, 0, 21)
            .unwrap()
            .is_none());
        assert!(s
            .on_chunk(peer, chunk(session + 1, 1, &[3], None), &g, 0, 21)
            .unwrap()
            .is_none());
        let done = s
            .on_chunk(
                peer,
                chunk(session, 1, &[3, 4], Some(cert(&k, &g, &[0, 1, 3]))),
                &g,
                0,
                22,
            )
            .unwrap()
            .expect("complete");
        assert_eq!(done.entries.len(), 4);
        assert_eq!(s.describe().as_deref(), Some("installing a snapshot"));
        s.installed(false, 30);
        let (next, _) = s
            .tick(Need::Behind, &ALL, 0, 2_000)
            .expect("retries after refusal");
        assert_ne!(next, peer, "the next attempt asks another peer");
    }

    #[test]
    fn gaps_disorder_and_bad_certificates_abort_the_transfer() {
        let k = keys();
        let g = genesis(&k);
        let cases: Vec<(&str, Vec<StateChunk>)> = {
            let (_, _, session) = asking();
            vec![
                ("gap", vec![chunk(session, 1, &[1], None)]),
                ("disorder", vec![chunk(session, 0, &[2, 1], None)]),
                (
                    "too few signatures",
                    vec![chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1])))],
                ),
                ("no certificate", {
                    let mut c = chunk(session, 0, &[1], None);
                    c.last = true;
                    vec![c]
                }),
                ("certificate for another root", {
                    let mut c = chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1, 2])));
                    c.state_root = Hash::tagged("t", b"other");
                    vec![c]
                }),
                ("forged signature", {
                    let mut bad = cert(&k, &g, &[0, 1, 2]);
                    bad.signatures[1].signature = bad.signatures[0].signature;
                    vec![chunk(session, 0, &[1], Some(bad))]
                }),
            ]
        };
        for (what, chunks) in cases {
            let (mut s, peer, _) = asking();
            let results: Vec<_> = chunks
                .into_iter()
                .map(|c| s.on_chunk(peer, c, &g, 0, 20))
                .collect();
            assert!(
                results.iter().any(|r| r.is_err()),
                "{what}: {:?}",
                results.len()
            );
            assert!(s.describe().is_none(), "{what}: aborted");
            assert!(
                s.tick(Need::Behind, &ALL, 0, 500).is_none(),
                "{what}: waits before retrying"
            );
            assert!(
                s.tick(Need::Behind, &ALL, 0, 1_100).is_some(),
                "{what}: then retries"
            );
        }
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (mut s, _, _) = asking();
        assert!(s.tick(Need::Behind, &ALL, 0, 5_000).is_none());
        assert!(s.describe().is_some());
        assert!(s
            .tick(Need::Behind, &ALL, 0, 10 + CHUNK_TIMEOUT_MS + 1)
            .is_none());
        assert!(s.describe().is_none(), "abandoned");
    }

    #[test]
    fn a_snapshot_not_above_our_executed_or_committed_height_is_refused_before_its_entries() {
        let g = genesis(&keys());
        // (executed, committed) against the snapshot's height 9.
        for (executed, committed) in [(9, 0), (12, 0), (5, 9), (5, 12)] {
            let (mut s, peer, session) = asking();
            s.executed(executed, 15);
            // Out of order: an error, but the stale height must be found before the entries.
            let refused = s
                .on_chunk(peer, chunk(session, 0, &[2, 1], None), &g, committed, 20)
                .map(|_| ())
                .expect_err("a stale snapshot");
            assert!(
                refused.contains("height 9, below the") && refused.contains("roll this node back"),
                "({executed}, {committed}): {refused}"
            );
            assert!(s.describe().is_none(), "aborted, nothing kept");
        }
        // Above both: taken.
        let (mut s, peer, session) = asking();
        s.executed(8, 15);
        let taken = s.on_chunk(peer, chunk(session, 0, &[1, 2], None), &g, 8, 20);
        assert!(matches!(taken, Ok(None)), "{:?}", taken.map(|_| ()));
        assert!(s.describe().is_some_and(|d| d.contains("1 chunks")));
    }

    #[test]
    fn only_peers_claiming_a_height_above_ours_are_asked() {
        // Validator 0 executed 4; the replica committed 6. Peer 1 claims 3, peer 2 claims 6
        // (not above), peer 3 claims 7.
        let claims = [4, 3, 6, 7];
        let mut asked = std::collections::BTreeSet::new();
        let mut s = StateSync::new(0, 4, 30_000, 0);
        s.executed(4, 0);
        for attempt in 0..6u64 {
            let now = 40_000 + attempt * 2_000;
            let (peer, _) = s
                .tick(Need::Behind, &claims, 6, now)
                .expect("peer 3 can serve");
            asked.insert(peer);
            s.abort(now);
        }
        assert_eq!(asked.into_iter().collect::<Vec<_>>(), vec![3]);
        // Nobody above us: nobody is asked; a short claim list asks nobody either.
        assert!(s.tick(Need::Behind, &[9, 3, 6, 6], 6, 60_000).is_none());
        assert!(s.tick(Need::Behind, &[9], 0, 60_000).is_none());
        assert!(s.describe().is_none());
    }

    #[test]
    fn a_stream_nobody_asked_for_is_ignored_and_the_transfer_goes_on() {
        let k = keys();
        let g = genesis(&k);
        let complete = |session| chunk(session, 0, &[1], Some(cert(&k, &g, &[0, 1, 2])));
        // No transfer under way: even a complete certified stream is ignored.
        let mut idle = StateSync::new(0, 4, 30_000, 0);
        assert!(matches!(idle.on_chunk(1, complete(1), &g, 0, 5), Ok(None)));
        assert!(idle.describe().is_none());
        // A transfer under way: another session's or another peer's stream changes nothing.
        let (mut s, peer, session) = asking();
        let other = (peer + 1) % 4;
        assert!(matches!(
            s.on_chunk(other, complete(session), &g, 0, 20),
            Ok(None)
        ));
        assert!(matches!(
            s.on_chunk(peer, complete(session + 1), &g, 0, 20),
            Ok(None)
        ));
        assert!(s.describe().is_some_and(|d| d.contains("0 chunks")));
        let done = s.on_chunk(peer, complete(session), &g, 0, 21);
        assert!(
            matches!(done, Ok(Some(_))),
            "the asked stream still completes"
        );
    }

    #[test]
    fn repairing_a_divergence_takes_a_snapshot_at_our_own_height_but_not_below() {
        let g = genesis(&keys());
        let repairing = |executed: u64| {
            let mut s = StateSync::new(0, 4, 30_000, 0);
            s.executed(executed, 0);
            // Peers claim our height: enough to repair, not to get ahead.
            let claims = [executed; 4];
            assert!(s.tick(Need::Behind, &claims, 9, 10).is_none());
            let (peer, msg) = s.tick(Need::Diverged, &claims, 9, 10).expect("a request");
            let NodeMessage::StateRequest { session } = msg else {
                panic!("not a state request")
            };
            (s, peer, session)
        };
        let (mut s, peer, session) = repairing(9);
        let taken = s.on_chunk(peer, chunk(session, 0, &[1], None), &g, 9, 20);
        assert!(matches!(taken, Ok(None)), "{:?}", taken.map(|_| ()));
        let (mut s, peer, session) = repairing(10);
        let refused = s.on_chunk(peer, chunk(session, 0, &[1], None), &g, 9, 20);
        assert!(refused.is_err_and(|e| e.contains("below the 10 we need")));
    }
}
