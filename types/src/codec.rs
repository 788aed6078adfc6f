//! The canonical binary encoding of everything lanes hashes or signs.
//!
//! Rules (one valid encoding per value, so equal values give equal bytes and equal hashes):
//! - unsigned integers: fixed width, big-endian (`u8`, `u16`, `u32`, `u64`, `u128`);
//! - `bool`: one byte, `0` or `1`; any other byte is rejected;
//! - fixed arrays (`[u8; N]`, `Hash`, keys, signatures): the raw bytes, no length;
//! - sequences (`Vec<T>`, [`Bytes`], `String`): a `u32` big-endian count, then the items;
//!   a count above [`MAX_SEQUENCE_LEN`] or above what the input can hold is rejected before
//!   anything is allocated; strings must be valid UTF-8;
//! - `Option<T>`: tag `0` (none) or `1` followed by the value; any other tag is rejected;
//! - enums: a `u8` tag followed by the variant's fields; unknown tags are rejected;
//! - structs: their fields in declaration order, nothing between them;
//! - maps are never encoded directly: they are sorted vectors, and types that need uniqueness
//!   (certificate signer lists) reject keys that are not strictly ascending when they decode;
//! - values that only validation may create (genesis) are encode-only.
//!
//! [`Decode::from_bytes`] rejects trailing bytes, so a value has exactly one encoding that decodes.

use thiserror::Error;

/// The largest element count a sequence may declare (16 Mi items).
pub const MAX_SEQUENCE_LEN: usize = 1 << 24;

/// Why bytes could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} more bytes, {remaining} left")]
    UnexpectedEnd {
        /// Bytes the decoder wanted.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// The value was complete but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A boolean byte other than 0 or 1.
    #[error("invalid boolean byte {0:#04x}")]
    InvalidBool(u8),
    /// An enum or option tag that names no variant.
    #[error("invalid tag {tag} for {ty}")]
    InvalidTag {
        /// The type being decoded.
        ty: &'static str,
        /// The tag that was read.
        tag: u8,
    },
    /// A sequence longer than the limit or than the remaining input.
    #[error("sequence length {len} exceeds limit {max}")]
    LengthTooLarge {
        /// Declared length.
        len: usize,
        /// Largest acceptable length here.
        max: usize,
    },
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A value that is well-formed but breaks a rule of its type (e.g. unsorted keys).
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// A cursor over bytes being decoded.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::UnexpectedEnd {
                needed: n,
                remaining: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes exactly `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a sequence length and checks it against the limit and the remaining input,
    /// assuming every element takes at least `min_item_size` bytes.
    pub fn read_len(&mut self, min_item_size: usize) -> Result<usize, DecodeError> {
        let len = u32::decode(self)? as usize;
        let fits = self.remaining() / min_item_size.max(1);
        let max = MAX_SEQUENCE_LEN.min(fits);
        if len > max {
            return Err(DecodeError::LengthTooLarge { len, max });
        }
        Ok(len)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.bytes.len()))
        }
    }
}

/// A value with a canonical binary encoding.
pub trait Encode {
    /// Appends the canonical encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The canonical encoding of `self` as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value that can be read back from its canonical encoding.
pub trait Decode: Sized {
    /// Reads one value from the reader, leaving the rest.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Smallest number of bytes an encoded value takes (bounds sequence lengths before allocation).
    const MIN_SIZE: usize = 1;

    /// Decodes a whole buffer; trailing bytes are an error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $t {
            const MIN_SIZE: usize = std::mem::size_of::<$t>();
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(r.take_array()?))
            }
        }
    )*};
}
int_codec!(u8, u16, u32, u64, u128);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(r)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::InvalidBool(b)),
        }
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    const MIN_SIZE: usize = N;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.take_array()
    }
}

/// Writes a sequence length prefix.
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    assert!(
        len <= MAX_SEQUENCE_LEN,
        "sequence of {len} items exceeds the codec limit"
    );
    (len as u32).encode(out);
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_len(self.len(), out);
        for item in self {
            item.encode(out);
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    const MIN_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.read_len(T::MIN_SIZE)?;
        // The count is bounded by the input, but an item may be much larger in memory than its
        // minimum encoding: reserve at most 64 KiB up front and let the vector grow as items
        // actually decode.
        let mut items = Vec::with_capacity(len.min((64 << 10) / std::mem::size_of::<T>().max(1)));
        for _ in 0..len {
            items.push(T::decode(r)?);
        }
        Ok(items)
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Decode for String {
    const MIN_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.read_len(1)?;
        let bytes = r.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match u8::decode(r)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            tag => Err(DecodeError::InvalidTag { ty: "Option", tag }),
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    const MIN_SIZE: usize = A::MIN_SIZE + B::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((A::decode(r)?, B::decode(r)?))
    }
}

/// Opaque bytes (a transaction, a receipt), encoded as a `u32` length and the raw bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl Encode for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_len(self.0.len(), out);
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Bytes {
    const MIN_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.read_len(1)?;
        Ok(Bytes(r.take(len)?.to_vec()))
    }
}

/// Implements [`Encode`] and [`Decode`] for a struct by encoding its fields in the order listed.
/// List every field, in declaration order: the encoding is the concatenation of the fields.
///
/// - `codec_struct!(T { a, b })`: both directions;
/// - `codec_struct!(T { a, b } check f)`: after decoding, `f(&value)` must return `Ok(())`
///   (a `Result<(), &'static str>`), so values that break the type's rules never decode;
/// - `codec_struct!(encode T { a, b })`: encoding only (for values built by validation, such as
///   genesis, that must not be created from raw bytes).
#[macro_export]
macro_rules! codec_struct {
    (encode $ty:ident { $($field:ident),+ $(,)? }) => {
        impl $crate::codec::Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::codec::Encode::encode(&self.$field, out); )+
            }
        }
    };
    ($ty:ident { $($field:ident),+ $(,)? } check $check:path) => {
        $crate::codec_struct!(encode $ty { $($field),+ });
        impl $crate::codec::Decode for $ty {
            fn decode(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                let value = Self { $( $field: $crate::codec::Decode::decode(r)?, )+ };
                $check(&value).map_err($crate::codec::DecodeError::Invalid)?;
                Ok(value)
            }
        }
    };
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        $crate::codec_struct!(encode $ty { $($field),+ });
        impl $crate::codec::Decode for $ty {
            fn decode(r: &mut $crate::codec::Reader<'_>) -> Result<Self, $crate::codec::DecodeError> {
                Ok(Self { $( $field: $crate::codec::Decode::decode(r)?, )+ })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_fixed_width() {
        assert_eq!(0x0102u16.to_bytes(), vec![1, 2]);
        assert_eq!(1u64.to_bytes(), vec![0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        assert_eq!(
            u16::from_bytes(&[0, 1, 2]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn bools_and_options_accept_only_their_tags() {
        assert_eq!(bool::from_bytes(&[2]), Err(DecodeError::InvalidBool(2)));
        assert!(matches!(
            Option::<u8>::from_bytes(&[7, 1]),
            Err(DecodeError::InvalidTag { tag: 7, .. })
        ));
    }

    #[test]
    fn huge_declared_lengths_fail_before_allocating() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            Vec::<u64>::from_bytes(&bytes),
            Err(DecodeError::LengthTooLarge { .. })
        ));
        assert!(matches!(
            Bytes::from_bytes(&bytes),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn strings_must_be_utf8() {
        let mut bytes = 2u32.to_bytes();
        bytes.extend_from_slice(&[0xc3, 0x28]);
        assert_eq!(String::from_bytes(&bytes), Err(DecodeError::InvalidUtf8));
    }
}
