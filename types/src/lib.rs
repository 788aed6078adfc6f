//! lanes-types: the vocabulary every other lanes crate shares.
//!
//! - [`hash`]: SHA-256 [`Hash`] with hex display and parsing;
//! - [`crypto`]: ed25519 keys and signatures with ZIP-215 single and batch verification,
//!   account [`Address`]es;
//! - [`codec`]: the one canonical binary encoding of everything hashed or signed;
//! - [`block`]: [`Block`] and [`BlockHeader`];
//! - [`cert`]: commit and checkpoint (execution) certificates and the messages they sign;
//! - [`merkle`]: a Merkle tree over an ordered list (receipts) with inclusion proofs;
//! - [`validator`]: the [`ValidatorSet`], fault tolerance and quorum checks;
//! - [`genesis`]: the validated [`Genesis`] file.

pub mod block;
pub mod cert;
pub mod codec;
pub mod crypto;
pub mod genesis;
pub mod hash;
pub mod merkle;
pub mod validator;

pub use block::{payload_digest, tx_hash, Block, BlockHeader};
pub use cert::{CheckpointCertificate, CommitCertificate, ExecRoots};
pub use codec::{Bytes, Decode, DecodeError, Encode};
pub use crypto::{
    verify_batch, Address, CryptoError, PublicKey, SecretKey, Signature, SignedMessage,
};
pub use genesis::{
    certified_block_overhead, Genesis, GenesisAsset, GenesisBalance, GenesisError, ProtocolParams,
    MAX_FRAME_BYTES,
};
pub use hash::{parse_hex, parse_hex_array, to_hex, Hash, ParseHexError};
pub use validator::{QuorumError, ValidatorInfo, ValidatorSet, ValidatorSignature};
