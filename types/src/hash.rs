//! SHA-256 hashes: the identity of blocks, transactions and state; and lanes' hex rule.
//!
//! **Hex** (hashes, keys, addresses, encoded objects, key files, the API): lanes emits
//! lowercase hex without a `0x` prefix ([`to_hex`], the `Display` impls) and accepts hex with
//! or without a `0x` prefix, in either case ([`parse_hex`], [`parse_hex_array`], `FromStr`).

use crate::codec::{Decode, DecodeError, Encode, Reader};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A SHA-256 digest. Shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used as the parent of the first block.
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA-256 of `data`.
    pub fn digest(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    /// SHA-256 of a domain tag followed by `data`. Tags keep hashes of different kinds of object
    /// apart, so a block header can never collide with a transaction or a tree node.
    pub fn tagged(tag: &str, data: &[u8]) -> Hash {
        Self::tagged_parts(tag, &[data])
    }

    /// SHA-256 of a domain tag followed by several byte strings (no separators: callers pass
    /// fixed-size parts or canonical encodings).
    pub fn tagged_parts(tag: &str, parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        h.update((tag.len() as u32).to_be_bytes());
        h.update(tag.as_bytes());
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex characters, for tables and logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

/// Why a string is not a hex hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseHexError {
    /// Wrong number of hex characters.
    #[error("expected {expected} hex characters, got {got}")]
    BadLength {
        /// Characters expected.
        expected: usize,
        /// Characters given.
        got: usize,
    },
    /// A character that is not a hex digit.
    #[error("not hexadecimal: {0}")]
    BadHex(String),
}

/// Hex of `bytes` as lanes emits it: lowercase, no `0x` prefix.
pub fn to_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// Parses hex of any even length, with an optional `0x` prefix.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, ParseHexError> {
    hex::decode(strip_0x(s)).map_err(|e| ParseHexError::BadHex(e.to_string()))
}

/// `s` without its `0x` prefix, if it has one.
fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

/// Parses exactly `N` bytes of hex, with an optional `0x` prefix.
pub fn parse_hex_array<const N: usize>(s: &str) -> Result<[u8; N], ParseHexError> {
    let s = strip_0x(s);
    if s.len() != 2 * N {
        return Err(ParseHexError::BadLength {
            expected: 2 * N,
            got: s.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| ParseHexError::BadHex(e.to_string()))?;
    Ok(out)
}

impl FromStr for Hash {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_array(s).map(Hash)
    }
}

impl Encode for Hash {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Hash {
    const MIN_SIZE: usize = 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Hash(r.take_array()?))
    }
}

/// Implements serde (as a hex string) for a newtype over a byte array with `FromStr`/`Display`.
#[macro_export]
macro_rules! serde_as_hex {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_hex!(Hash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_matches_the_standard_vector() {
        assert_eq!(
            Hash::digest(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash::digest(b"x");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert_eq!(format!("0x{h}").parse::<Hash>().unwrap(), h);
        assert_eq!(
            "abcd".parse::<Hash>(),
            Err(ParseHexError::BadLength {
                expected: 64,
                got: 4
            })
        );
        assert!(matches!(
            "zz".repeat(32).parse::<Hash>(),
            Err(ParseHexError::BadHex(_))
        ));
    }

    #[test]
    fn hex_of_any_length_follows_the_same_rule() {
        assert_eq!(to_hex([0x0a, 0xff]), "0aff");
        for s in ["0aff", "0x0aff", "0AFF", "0x0aFF"] {
            assert_eq!(parse_hex(s).unwrap(), [0x0a, 0xff], "{s}");
        }
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(matches!(parse_hex("abc"), Err(ParseHexError::BadHex(_))));
        assert!(matches!(parse_hex("zz"), Err(ParseHexError::BadHex(_))));
    }

    #[test]
    fn tags_separate_domains() {
        assert_ne!(Hash::tagged("a", b"bc"), Hash::tagged("ab", b"c"));
        assert_ne!(Hash::tagged("a", b"x"), Hash::digest(b"x"));
    }
}
