//! How the database is laid out: the schema version, the column families, the meta keys and
//! the big-endian key encodings (so iteration follows height).

/// The on-disk schema this build reads and writes. Bump it on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// Column family names, one per concern.
pub mod cf {
    /// Schema version, chain identity, head, block floor, voting hold.
    pub const META: &str = "meta";
    /// height (u64 BE) -> encoded `Block`.
    pub const BLOCKS: &str = "blocks";
    /// block hash -> height (u64 BE).
    pub const BLOCK_HASHES: &str = "block_hashes";
    /// height (u64 BE) ++ kind (0 commit, 1 checkpoint) -> encoded certificate.
    pub const CERTIFICATES: &str = "certificates";
    /// Consensus safety state: keys and values chosen by the consensus driver.
    pub const SAFETY: &str = "safety";
    /// State key -> state value (latest version).
    pub const STATE: &str = "state";
    /// State-tree node key -> node bytes.
    pub const TREE: &str = "tree";
    /// Transaction hash -> height (u64 BE) ++ index (u32 BE).
    pub const TX_INDEX: &str = "tx_index";
    /// height (u64 BE) ++ index (u32 BE) -> receipt bytes.
    pub const RECEIPTS: &str = "receipts";
    /// height (u64 BE) -> the roots (state, receipts) this replica computed for that block.
    pub const ROOTS: &str = "roots";
    /// height (u64 BE) -> the block's receipt leaf hashes, 32 bytes each, in block order (for
    /// receipt proofs under the certified receipts root).
    pub const RECEIPT_LEAVES: &str = "receipt_leaves";
    /// Every column family, in the order they are opened.
    pub const ALL: &[&str] = &[
        META,
        BLOCKS,
        BLOCK_HASHES,
        CERTIFICATES,
        SAFETY,
        STATE,
        TREE,
        TX_INDEX,
        RECEIPTS,
        ROOTS,
        RECEIPT_LEAVES,
    ];
}

// Meta keys (family `cf::META`). A `consensus_position` key is no longer written or read. No
// node ever wrote it (only storage tests did); a database that holds it still opens and reads:
// an unknown meta key is ignored.
pub(super) const META_SCHEMA: &[u8] = b"schema_version";
pub(super) const META_CHAIN: &[u8] = b"chain_id";
pub(super) const META_GENESIS: &[u8] = b"genesis_hash";
pub(super) const META_HEAD: &[u8] = b"head";
pub(super) const META_FLOOR: &[u8] = b"block_floor";
pub(super) const META_VOTING_HOLD: &[u8] = b"voting_hold";

// Certificate kinds, the last byte of a certificate key.
pub(super) const CERT_COMMIT: u8 = 0;
pub(super) const CERT_CHECKPOINT: u8 = 1;

/// Key of per-height records (blocks, roots): the height, big-endian.
pub(super) fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// Key of a certificate: height ++ kind ([`CERT_COMMIT`] or [`CERT_CHECKPOINT`]).
pub(super) fn cert_key(height: u64, kind: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8] = kind;
    k
}

/// Key of a receipt: height ++ index in the block.
pub(super) fn receipt_key(height: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&height.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}
