//! The safety state a replica persists before any vote that depends on it leaves the node, and
//! how it is read back after a restart.
//!
//! Records are small key/value pairs so that each vote writes only what changed:
//!
//! | key | value | written before |
//! | --- | --- | --- |
//! | `view` | (view, installed) | a VIEW-CHANGE, or the first vote in a new view |
//! | `new-view` | the NEW-VIEW that installed `view` | the NEW-VIEW (primary) or the first vote in its view |
//! | `o` ++ height | (view, block hash) of the block we proposed as primary | our PRE-PREPARE |
//! | `p` ++ height | (view, block) of our PREPARE, the block whole | our PREPARE |
//! | `c` ++ height | (view, block hash) of our COMMIT | our COMMIT |
//! | `q` ++ height | our highest prepared certificate and its payload | our COMMIT |
//!
//! Heights are big-endian so records sort by height; records at or below the stable checkpoint
//! are deleted with [`SafetyWrite::DeleteThrough`].
//!
//! The NEW-VIEW record is what binds a restarted replica to the blocks its view re-proposed:
//! without it, a byzantine primary could offer it a fresh block at a height the NEW-VIEW gave
//! to another (issue 15, hole 1). The proposal record does the same for the primary's own
//! fresh proposals, which it may send before it can PREPARE them (pipelining).

use crate::messages::{NewView, Phase, PreparedCert};
use lanes_types::codec::{Decode, DecodeError, Encode};
use lanes_types::{Block, Bytes, Hash};
use std::collections::BTreeMap;

/// One change to the persisted safety state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafetyWrite {
    /// Store `value` under `key`, replacing what was there.
    Put {
        /// Record key.
        key: Vec<u8>,
        /// Record value.
        value: Vec<u8>,
    },
    /// Delete every height-keyed record ([`HEIGHT_KEYED`]) at a height `<= height`.
    DeleteThrough {
        /// Highest height to forget.
        height: u64,
    },
}

/// Why persisted safety records could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A record's key is not one this version writes.
    #[error("unknown safety record key {0:02x?}")]
    UnknownKey(Vec<u8>),
    /// A record's value does not decode.
    #[error("safety record {key:02x?} is corrupt: {error}")]
    Corrupt {
        /// The record's key.
        key: Vec<u8>,
        /// The decoding error.
        error: DecodeError,
    },
}

/// Key of the view record.
pub const VIEW_KEY: &[u8] = b"view";
/// Key of the NEW-VIEW record.
pub const NEW_VIEW_KEY: &[u8] = b"new-view";
const PROPOSAL: u8 = b'o';
const PREPARE: u8 = b'p';
const COMMIT: u8 = b'c';
const PREPARED: u8 = b'q';
/// The first key byte of every height-keyed record kind (what `DeleteThrough` deletes); their
/// keys are that byte followed by the big-endian height.
pub const HEIGHT_KEYED: [u8; 4] = [PROPOSAL, PREPARE, COMMIT, PREPARED];

fn height_key(kind: u8, height: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(kind);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// The key ranges `[from, to)` that [`SafetyWrite::DeleteThrough`] at `height` deletes, for a
/// store that deletes by range: one per height-keyed record kind.
pub fn delete_through_ranges(height: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    HEIGHT_KEYED
        .iter()
        .map(|&kind| {
            (
                height_key(kind, 0),
                height_key(kind, height.saturating_add(1)),
            )
        })
        .collect()
}

/// Applies `DeleteThrough` to an in-memory copy of the records (used by the simulator and
/// tests; the node does the same with a range delete).
pub fn apply(records: &mut BTreeMap<Vec<u8>, Vec<u8>>, write: &SafetyWrite) {
    match write {
        SafetyWrite::Put { key, value } => {
            records.insert(key.clone(), value.clone());
        }
        SafetyWrite::DeleteThrough { height } => {
            records.retain(|key, _| match parse_height_key(key) {
                Some((_, h)) => h > *height,
                None => true,
            });
        }
    }
}

/// The (kind, height) of a height-keyed record key.
pub fn parse_height_key(key: &[u8]) -> Option<(u8, u64)> {
    if key.len() != 9 || !HEIGHT_KEYED.contains(&key[0]) {
        return None;
    }
    let mut h = [0u8; 8];
    h.copy_from_slice(&key[1..]);
    Some((key[0], u64::from_be_bytes(h)))
}

/// The view record.
pub(crate) fn view_record(view: u64, installed: bool) -> SafetyWrite {
    SafetyWrite::Put {
        key: VIEW_KEY.to_vec(),
        value: (view, installed).to_bytes(),
    }
}

/// The NEW-VIEW that installed our current view.
pub(crate) fn new_view_record(nv: &NewView) -> SafetyWrite {
    SafetyWrite::Put {
        key: NEW_VIEW_KEY.to_vec(),
        value: nv.to_bytes(),
    }
}

/// The block we proposed as primary at `height` in `view`.
pub(crate) fn proposal_record(height: u64, view: u64, hash: Hash) -> SafetyWrite {
    SafetyWrite::Put {
        key: height_key(PROPOSAL, height),
        value: (view, hash).to_bytes(),
    }
}

/// Our PREPARE of `block` in `view`, with the block itself: a prepared certificate then means
/// f+1 honest replicas can serve the payload, even after they all restarted.
pub(crate) fn prepare_record(view: u64, block: &Block) -> SafetyWrite {
    let mut value = Vec::new();
    view.encode(&mut value);
    block.encode(&mut value);
    SafetyWrite::Put {
        key: height_key(PREPARE, block.height()),
        value,
    }
}

/// Our COMMIT vote at `height`.
pub(crate) fn commit_record(height: u64, view: u64, hash: Hash) -> SafetyWrite {
    SafetyWrite::Put {
        key: height_key(COMMIT, height),
        value: (view, hash).to_bytes(),
    }
}

/// The vote a PREPARE or COMMIT record holds: (phase, height, view, block hash); `None` for
/// other records or values that do not decode.
pub fn recorded_vote(key: &[u8], value: &[u8]) -> Option<(Phase, u64, u64, Hash)> {
    let (kind, height) = parse_height_key(key)?;
    match kind {
        PREPARE => {
            let (view, hash, _) = decode_prepare(value).ok()?;
            Some((Phase::Prepare, height, view, hash))
        }
        COMMIT => {
            let (view, hash) = <(u64, Hash)>::from_bytes(value).ok()?;
            Some((Phase::Commit, height, view, hash))
        }
        _ => None,
    }
}

/// A PREPARE record: (view, hash, block); records written before blocks were kept in them
/// hold (view, hash) only.
fn decode_prepare(value: &[u8]) -> Result<(u64, Hash, Option<Block>), DecodeError> {
    if let Ok((view, hash)) = <(u64, Hash)>::from_bytes(value) {
        return Ok((view, hash, None));
    }
    let (view, block) = <(u64, Block)>::from_bytes(value)?;
    Ok((view, block.hash(), Some(block)))
}

/// Our highest prepared certificate at its height, with the block's transactions.
pub(crate) fn prepared_record(cert: &PreparedCert, txs: &[Bytes]) -> SafetyWrite {
    let mut value = cert.to_bytes();
    txs.to_vec().encode(&mut value);
    SafetyWrite::Put {
        key: height_key(PREPARED, cert.header.height),
        value,
    }
}

/// Everything read back from the safety records.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// (view, installed), if a view record exists.
    pub view: Option<(u64, bool)>,
    /// The NEW-VIEW of the latest installed view, if any.
    pub new_view: Option<NewView>,
    /// Our proposals as primary per height: (view, hash).
    pub proposals: BTreeMap<u64, (u64, Hash)>,
    /// Our PREPARE per height: (view, hash, the block if the record holds it).
    pub prepares: BTreeMap<u64, (u64, Hash, Option<Block>)>,
    /// Our COMMIT per height: (view, hash).
    pub commits: BTreeMap<u64, (u64, Hash)>,
    /// Our prepared certificates per height, with payloads.
    pub prepared: BTreeMap<u64, (PreparedCert, Vec<Bytes>)>,
}

/// Parses persisted records; any unknown or undecodable record is an error (the node refuses to
/// start rather than vote with a safety state it cannot read).
pub(crate) fn restore<'a>(
    records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Restored, RestoreError> {
    let mut out = Restored::default();
    for (key, value) in records {
        let corrupt = |error| RestoreError::Corrupt {
            key: key.to_vec(),
            error,
        };
        if key == VIEW_KEY {
            out.view = Some(<(u64, bool)>::from_bytes(value).map_err(corrupt)?);
            continue;
        }
        if key == NEW_VIEW_KEY {
            out.new_view = Some(NewView::from_bytes(value).map_err(corrupt)?);
            continue;
        }
        let (kind, height) =
            parse_height_key(key).ok_or_else(|| RestoreError::UnknownKey(key.to_vec()))?;
        match kind {
            PROPOSAL => {
                out.proposals
                    .insert(height, <(u64, Hash)>::from_bytes(value).map_err(corrupt)?);
            }
            PREPARE => {
                let (view, hash, block) = decode_prepare(value).map_err(corrupt)?;
                if block.as_ref().is_some_and(|b| b.height() != height) {
                    return Err(corrupt(DecodeError::Invalid(
                        "prepare record holds a block of another height",
                    )));
                }
                out.prepares.insert(height, (view, hash, block));
            }
            COMMIT => {
                out.commits
                    .insert(height, <(u64, Hash)>::from_bytes(value).map_err(corrupt)?);
            }
            _ => {
                let mut r = lanes_types::codec::Reader::new(value);
                let cert = PreparedCert::decode(&mut r).map_err(corrupt)?;
                let txs = Vec::<Bytes>::decode(&mut r).map_err(corrupt)?;
                r.finish().map_err(corrupt)?;
                if cert.header.height != height
                    || lanes_types::payload_digest(&txs) != cert.header.payload_digest
                {
                    return Err(corrupt(DecodeError::Invalid(
                        "prepared record does not match its key or payload",
                    )));
                }
                out.prepared.insert(height, (cert, txs));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanes_types::BlockHeader;

    fn block(height: u64) -> Block {
        let txs = vec![Bytes(b"tx".to_vec())];
        Block {
            header: BlockHeader {
                chain_id: "c".into(),
                height,
                parent: Hash::ZERO,
                view: 0,
                proposer: 0,
                timestamp_ms: 0,
                payload_digest: lanes_types::payload_digest(&txs),
            },
            txs,
        }
    }

    fn put(write: SafetyWrite) -> (Vec<u8>, Vec<u8>) {
        match write {
            SafetyWrite::Put { key, value } => (key, value),
            SafetyWrite::DeleteThrough { .. } => unreachable!("a put"),
        }
    }

    #[test]
    fn a_prepare_record_holds_its_block_and_older_records_without_one_still_read() {
        let b = block(7);
        let (key, value) = put(prepare_record(3, &b));
        let (legacy_key, legacy) = (key.clone(), (3u64, b.hash()).to_bytes());
        let restored = restore([(key.as_slice(), value.as_slice())]).unwrap();
        assert_eq!(restored.prepares[&7], (3, b.hash(), Some(b.clone())));
        assert_eq!(
            recorded_vote(&key, &value),
            Some((Phase::Prepare, 7, 3, b.hash()))
        );
        let restored = restore([(legacy_key.as_slice(), legacy.as_slice())]).unwrap();
        assert_eq!(restored.prepares[&7], (3, b.hash(), None));
    }

    #[test]
    fn a_prepare_record_whose_block_is_of_another_height_is_corrupt() {
        let (_, value) = put(prepare_record(3, &block(8)));
        let key = height_key(PREPARE, 7);
        assert!(matches!(
            restore([(key.as_slice(), value.as_slice())]),
            Err(RestoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn the_new_view_and_proposal_records_read_back() {
        let nv = NewView {
            view: 5,
            view_changes: Vec::new(),
            signature: lanes_types::Signature([1; 64]),
        };
        let b = block(4);
        let records = [
            put(new_view_record(&nv)),
            put(proposal_record(4, 5, b.hash())),
        ];
        let restored = restore(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).unwrap();
        assert_eq!(restored.new_view, Some(nv));
        assert_eq!(restored.proposals[&4], (5, b.hash()));
        let mut map = BTreeMap::new();
        for (k, v) in records {
            apply(&mut map, &SafetyWrite::Put { key: k, value: v });
        }
        apply(&mut map, &SafetyWrite::DeleteThrough { height: 4 });
        assert_eq!(
            map.len(),
            1,
            "the proposal record is height-keyed, the NEW-VIEW is not"
        );
    }

    #[test]
    fn the_delete_ranges_delete_exactly_what_apply_deletes() {
        let mut map = BTreeMap::new();
        for h in [0u64, 1, 4, 5, 6, u64::MAX - 1] {
            for kind in HEIGHT_KEYED {
                map.insert(height_key(kind, h), vec![1]);
            }
        }
        map.insert(VIEW_KEY.to_vec(), vec![1]);
        map.insert(NEW_VIEW_KEY.to_vec(), vec![1]);
        let ranges = delete_through_ranges(5);
        let mut applied = map.clone();
        apply(&mut applied, &SafetyWrite::DeleteThrough { height: 5 });
        for key in map.keys() {
            let in_range = ranges.iter().any(|(from, to)| {
                key.as_slice() >= from.as_slice() && key.as_slice() < to.as_slice()
            });
            assert_eq!(in_range, !applied.contains_key(key), "{key:?}");
        }
    }
}
